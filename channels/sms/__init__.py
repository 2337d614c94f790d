"""The SMS channel over Twilio: signed webhooks, the consent ledger, sends and delivery status."""
