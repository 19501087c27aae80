-- What a destructive request's dry run showed, frozen with it; execution acts on it or is 'stale'.
ALTER TABLE forge.approvals ADD COLUMN scope jsonb;
ALTER TABLE forge.approvals DROP CONSTRAINT approvals_status_check;
ALTER TABLE forge.approvals ADD CONSTRAINT approvals_status_check
    CHECK (status IN ('pending', 'denied', 'cancelled', 'expired', 'executing', 'succeeded',
                      'failed', 'outcome_unknown', 'stale'));
