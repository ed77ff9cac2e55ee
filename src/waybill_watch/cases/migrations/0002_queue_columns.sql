-- What the queue, the gauges and the closed-cases list read without opening documents
-- (measured with 100,000 cases: the overdue gauge unpacked every document, 0.7 s a call;
-- `status = closed` walked past every open case; list pages decoded whole documents).
ALTER TABLE cases ADD COLUMN severity text;
ALTER TABLE cases ADD COLUMN next_step text;
ALTER TABLE cases ADD COLUMN pending_due timestamptz[] NOT NULL DEFAULT '{}';
UPDATE cases SET
    severity = doc ->> 'severity',
    next_step = (
        SELECT s ->> 'step' FROM jsonb_array_elements(doc -> 'steps') AS s
        WHERE s ->> 'state' = 'pending'
        ORDER BY (s ->> 'due_at')::timestamptz LIMIT 1
    ),
    pending_due = ARRAY(
        SELECT (s ->> 'due_at')::timestamptz FROM jsonb_array_elements(doc -> 'steps') AS s
        WHERE s ->> 'state' = 'pending'
    );
ALTER TABLE cases ALTER COLUMN severity SET NOT NULL;
CREATE INDEX cases_status_queue ON cases (status, rank, case_id);
