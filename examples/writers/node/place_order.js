// place_order.js: an order and its Bellhop notification in one transaction,
// with node-postgres (pg). The relay pushes the notification only once the
// order commits; --rollback declines the payment after both writes, and
// neither the order nor the notification is ever seen.
//
//   cd examples/writers/node && npm ci
//   export DATABASE_URL=postgres://shop@localhost:5432/shop
//   node place_order.js 42 "Blue mug"
//   node place_order.js --rollback 42 "Blue mug"
//
// BELLHOP_SCHEMA names Bellhop's schema (default bellhop). The role in
// DATABASE_URL needs only bellhop_writer and INSERT, SELECT on orders
// (see ../README.md).
import pg from 'pg';

class PaymentDeclined extends Error {}

const args = process.argv.slice(2);
const rollback = args.includes('--rollback');
const [customerId, title, ...rest] = args.filter((a) => a !== '--rollback');
if (!customerId || !title || rest.length > 0) {
  console.error('usage: node place_order.js [--rollback] <customer id> <title>');
  process.exit(2);
}
const send = `${pg.escapeIdentifier(process.env.BELLHOP_SCHEMA || 'bellhop')}.send`;

const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
await client.connect();
let orderId, notificationId;
try {
  await client.query('BEGIN');
  try {
    ({ rows: [{ id: orderId }] } = await client.query(
      'INSERT INTO orders (customer_id, title) VALUES ($1, $2) RETURNING id',
      [customerId, title],
    ));
    // data is what the inbox lists, sse what the open tabs get live.
    const note = { title: `Order ${orderId} placed: ${title}`, orderId };
    ({ rows: [{ id: notificationId }] } = await client.query(
      `SELECT ${send}(notifiable_id => $1, type => 'order.placed',
                      data => $2::jsonb, sse => $2::jsonb) AS id`,
      [customerId, note],
    ));
    if (rollback) throw new PaymentDeclined('payment declined');
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  }
  console.log(`order ${orderId} placed: notification ${notificationId}`);
} catch (err) {
  if (!(err instanceof PaymentDeclined)) throw err;
  console.log(`order ${orderId} rolled back (${err.message}): notification ${notificationId} discarded`);
} finally {
  await client.end();
}
