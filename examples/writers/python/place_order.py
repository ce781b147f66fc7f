#!/usr/bin/python3
"""place_order.py: an order and its Bellhop notification in one transaction,
with psycopg2. The relay pushes the notification only once the order
commits; --rollback declines the payment after both writes, and neither the
order nor the notification is ever seen.

    apt-get install python3-psycopg2   # Debian's driver, for /usr/bin/python3
    export DATABASE_URL=postgres://shop@localhost:5432/shop
    /usr/bin/python3 place_order.py 42 "Blue mug"
    /usr/bin/python3 place_order.py --rollback 42 "Blue mug"

BELLHOP_SCHEMA names Bellhop's schema (default bellhop). The role in
DATABASE_URL needs only bellhop_writer and INSERT, SELECT on orders
(see ../README.md).
"""
import os
import sys

import psycopg2
from psycopg2 import sql
from psycopg2.extras import Json


class PaymentDeclined(Exception):
    pass


def main():
    args = sys.argv[1:]
    rollback = "--rollback" in args
    args = [a for a in args if a != "--rollback"]
    if len(args) != 2:
        sys.exit("usage: place_order.py [--rollback] <customer id> <title>")
    customer_id, title = args
    send = sql.SQL(
        "SELECT {}.send(notifiable_id => %(to)s, type => 'order.placed',"
        " data => %(note)s, sse => %(note)s)"
    ).format(sql.Identifier(os.environ.get("BELLHOP_SCHEMA", "bellhop")))

    conn = psycopg2.connect(os.environ["DATABASE_URL"])
    order_id = notification_id = None
    try:
        # One transaction: committed when the block ends, rolled back if it
        # raises.
        with conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO orders (customer_id, title) VALUES (%s, %s) RETURNING id",
                (customer_id, title),
            )
            (order_id,) = cur.fetchone()
            # data is what the inbox lists, sse what the open tabs get live.
            note = Json({"title": f"Order {order_id} placed: {title}", "orderId": order_id})
            cur.execute(send, {"to": customer_id, "note": note})
            (notification_id,) = cur.fetchone()
            if rollback:
                raise PaymentDeclined("payment declined")
        print(f"order {order_id} placed: notification {notification_id}")
    except PaymentDeclined as e:
        print(f"order {order_id} rolled back ({e}): notification {notification_id} discarded")
    finally:
        conn.close()


if __name__ == "__main__":
    main()
