-- Where the sweep (expire-reservations) goes on from: a run settles at most
-- MaxBatches pages of due holds, and the holds it keeps (pending orders) stay
-- first in line. Starting every run from the oldest hold, a backlog of kept
-- holds larger than one run starved every hold behind it: confirmed orders'
-- holds were never sold, abandoned ones never given back. A run now starts
-- where the last one stopped and wraps around to the oldest once it reaches
-- the end. One row at most (id is always true).
CREATE TABLE sweep_cursor (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    created_at timestamptz NOT NULL,
    order_id   uuid NOT NULL
);
