-- Paused queues (operators' pauseQueue / resumeQueue): the relay keeps a paused queue's jobs in
-- the outbox and the workers hand back any they receive, until it is resumed. Kept in Postgres
-- so a pause survives restarts and every process sees it.
CREATE TABLE queue_pauses (
    queue      text PRIMARY KEY,
    paused_at  timestamptz NOT NULL DEFAULT now(),
    paused_by  text NOT NULL
);
