// Package outbox writes Bellhop notifications from Go, inside the
// application's own business transaction.
//
// A notification is one more row in bellhop.notifications, written through
// the caller's transaction: it exists, and the relay pushes it to the
// recipient's open browser tabs, only if that transaction commits; a
// rollback leaves nothing behind, and no event. Any type with Type() and
// ToDatabase() is a Notification; optional methods give it a small live
// payload (Live), a narrower route (Routed: the Database or SSE channel
// only) or a database key that makes it a progress notification updated in
// place (Keyed). Message builds one from values.
//
// One Outbox, built once with New, serves the whole application; it holds
// no connection. Send and SendMany write through pgx (a pgx.Tx, a pool or a
// connection); SendSQL and SendManySQL through database/sql (a *sql.Tx, a
// *sql.DB or a *sql.Conn, any driver). Both run the same statement with the
// same validation: bad input is a *ValidationError (errors.Is ErrInvalid)
// and writes nothing.
//
// The package only writes: the relay (package relay, or the cmd/relay
// binary) pushes, and package inbox reads. Recipient is
// bellhoptype.Recipient, shared by all three.
//
// See ExampleOutbox_Send for a send in a business transaction,
// ExampleOutbox_SendSQL for database/sql, ExampleOutbox_SendMany for a
// fan-out, and Example_progress for a progress notification.
package outbox
