-- The daily invitation quota counts the invitations of the last 24 h from the event log
-- (`invitation.intent`, one per invitation sent): an index so that is not a scan of the log.
CREATE INDEX events_invitation_intents ON events (at) WHERE kind = 'invitation.intent';
