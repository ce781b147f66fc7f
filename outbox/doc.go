// Package outbox is Bellhop's write side: it writes a notification row in
// the application's own transaction, so the notification exists, and is
// pushed to the recipient's open tabs, only if that transaction commits.
//
// One Outbox, built once with New, serves the whole application; it holds
// no connection. Send and SendMany write through pgx (a pgx.Tx, a pool or a
// connection); SendSQL and SendManySQL through database/sql (a *sql.Tx, a
// *sql.DB or a *sql.Conn, any driver). Both run the same statements with
// the same validation, so a send behaves alike whichever data layer the
// application uses.
package outbox
