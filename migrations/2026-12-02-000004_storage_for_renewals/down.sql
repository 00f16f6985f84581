ALTER TABLE scheduled_actions RESET (fillfactor);
ALTER TABLE entitlements RESET (fillfactor);
ALTER TABLE subscriptions RESET (fillfactor);

CREATE INDEX scheduled_actions_subject_idx ON scheduled_actions (subject_id);
ALTER TABLE scheduled_actions DROP CONSTRAINT scheduled_actions_subject_kind_term_tag_key;
ALTER TABLE scheduled_actions
    ADD CONSTRAINT scheduled_actions_kind_subject_id_term_tag_key UNIQUE (kind, subject_id, term, tag);
