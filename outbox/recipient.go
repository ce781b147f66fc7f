package outbox

import "github.com/bellhophq/bellhop/bellhoptype"

// Recipient is who a notification is for: a notifiable (Type, ID) within a
// tenant. The zero Tenant is the single-tenant default. It is
// bellhoptype.Recipient, shared with the inbox and the relay.
type Recipient = bellhoptype.Recipient

// User is the recipient of type "User" with the given id and no tenant.
func User(id string) Recipient { return bellhoptype.User(id) }

// validateRecipient checks r's fields; field names it in the error.
func validateRecipient(r Recipient, field string) error {
	for _, f := range []struct{ name, value string }{{"tenant", r.Tenant}, {"type", r.Type}, {"id", r.ID}} {
		if f.name != "tenant" && f.value == "" {
			return invalid(field+"."+f.name, "is empty")
		}
		if err := checkName(field+"."+f.name, f.value); err != nil {
			return err
		}
	}
	return nil
}
