-- A ticket is recorded as used by the first frame of the connection it opened (collab.domain.admission),
-- not by $connect, whose cold start then needs no Postgres. The connection that used it is kept, so
-- that admitting the same connection again (a retry after an unknown commit outcome) is not taken for
-- a replay. Rows written before this column existed stay NULL and match no connection.
ALTER TABLE used_tickets ADD COLUMN connection_id text CHECK (length(connection_id) <= 128);
