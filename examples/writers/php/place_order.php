<?php
// place_order.php: an order and its Bellhop notification in one transaction,
// with PDO. The relay pushes the notification only once the order commits;
// --rollback declines the payment after both writes, and neither the order
// nor the notification is ever seen.
//
//   apt-get install php-cli php-pgsql
//   export DATABASE_URL=postgres://shop@localhost:5432/shop
//   php place_order.php 42 "Blue mug"
//   php place_order.php --rollback 42 "Blue mug"
//
// BELLHOP_SCHEMA names Bellhop's schema (default bellhop). The role in
// DATABASE_URL needs only bellhop_writer and INSERT, SELECT on orders
// (see ../README.md).

final class PaymentDeclined extends RuntimeException {}

$args = array_slice($argv, 1);
$rollback = in_array('--rollback', $args, true);
$args = array_values(array_diff($args, ['--rollback']));
if (count($args) !== 2) {
    fwrite(STDERR, "usage: php place_order.php [--rollback] <customer id> <title>\n");
    exit(2);
}
[$customerId, $title] = $args;

// PDO takes a DSN of libpq keywords, not a URL.
$url = parse_url(getenv('DATABASE_URL'));
parse_str($url['query'] ?? '', $query);
$dsn = sprintf('pgsql:host=%s;port=%d;dbname=%s;sslmode=%s', $url['host'], $url['port'] ?? 5432,
    ltrim($url['path'] ?? '', '/'), $query['sslmode'] ?? 'prefer');
$pdo = new PDO($dsn, urldecode($url['user'] ?? ''), urldecode($url['pass'] ?? ''),
    [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
$schema = '"' . str_replace('"', '""', getenv('BELLHOP_SCHEMA') ?: 'bellhop') . '"';

$orderId = $notificationId = null;
$pdo->beginTransaction();
try {
    $insert = $pdo->prepare('INSERT INTO orders (customer_id, title) VALUES (?, ?) RETURNING id');
    $insert->execute([$customerId, $title]);
    $orderId = $insert->fetchColumn();
    // data is what the inbox lists, sse what the open tabs get live.
    $note = json_encode(['title' => "Order $orderId placed: $title", 'orderId' => $orderId]);
    $send = $pdo->prepare("SELECT $schema.send(notifiable_id => ?, type => 'order.placed',
                                              data => ?::jsonb, sse => ?::jsonb)");
    $send->execute([$customerId, $note, $note]);
    $notificationId = $send->fetchColumn();
    if ($rollback) {
        throw new PaymentDeclined('payment declined');
    }
    $pdo->commit();
    echo "order $orderId placed: notification $notificationId\n";
} catch (Throwable $e) {
    if ($pdo->inTransaction()) {
        $pdo->rollBack();
    }
    if (!$e instanceof PaymentDeclined) {
        throw $e;
    }
    echo "order $orderId rolled back ({$e->getMessage()}): notification $notificationId discarded\n";
}
