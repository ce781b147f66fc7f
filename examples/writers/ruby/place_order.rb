#!/usr/bin/env ruby
# place_order.rb: an order and its Bellhop notification in one transaction,
# with ruby-pg. The relay pushes the notification only once the order
# commits; --rollback declines the payment after both writes, and neither
# the order nor the notification is ever seen.
#
#   apt-get install ruby ruby-pg
#   export DATABASE_URL=postgres://shop@localhost:5432/shop
#   ruby place_order.rb 42 "Blue mug"
#   ruby place_order.rb --rollback 42 "Blue mug"
#
# BELLHOP_SCHEMA names Bellhop's schema (default bellhop). The role in
# DATABASE_URL needs only bellhop_writer and INSERT, SELECT on orders
# (see ../README.md).
require "json"
require "pg"

class PaymentDeclined < StandardError; end

rollback = !ARGV.delete("--rollback").nil?
abort "usage: ruby place_order.rb [--rollback] <customer id> <title>" unless ARGV.size == 2
customer_id, title = ARGV

conn = PG.connect(ENV.fetch("DATABASE_URL"))
send_fn = "#{conn.quote_ident(ENV.fetch("BELLHOP_SCHEMA", "bellhop"))}.send"
order_id = notification_id = nil
begin
  # One transaction: committed when the block ends, rolled back if it raises.
  conn.transaction do
    order_id = conn.exec_params(
      "INSERT INTO orders (customer_id, title) VALUES ($1, $2) RETURNING id",
      [customer_id, title]
    ).getvalue(0, 0).to_i
    # data is what the inbox lists, sse what the open tabs get live.
    note = { title: "Order #{order_id} placed: #{title}", orderId: order_id }.to_json
    notification_id = conn.exec_params(
      "SELECT #{send_fn}(notifiable_id => $1, type => 'order.placed', data => $2::jsonb, sse => $2::jsonb)",
      [customer_id, note]
    ).getvalue(0, 0)
    raise PaymentDeclined, "payment declined" if rollback
  end
  puts "order #{order_id} placed: notification #{notification_id}"
rescue PaymentDeclined => e
  puts "order #{order_id} rolled back (#{e.message}): notification #{notification_id} discarded"
ensure
  conn.close
end
