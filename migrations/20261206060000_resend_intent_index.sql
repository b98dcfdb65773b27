-- The daily invitation quota counts re-sent invitations too (`reinvite` records
-- `invitation.resend-intent` right before each POST /invitations): an index like the one on
-- `invitation.intent`, so counting them is not a scan of the event log.
CREATE INDEX events_invitation_resend_intents ON events (at) WHERE kind = 'invitation.resend-intent';
