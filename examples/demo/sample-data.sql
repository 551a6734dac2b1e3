-- Sample data resembling seed 004's chronicle_db: the four tables of its
-- count table (971 / 260 / 196 / 99 rows) plus a larger event table.
CREATE TABLE sprint_retrospectives (
  id serial PRIMARY KEY, sprint text NOT NULL, held_on date NOT NULL, summary text);
CREATE TABLE retrospective_attendees (
  id serial PRIMARY KEY, retrospective_id int REFERENCES sprint_retrospectives(id), name text);
CREATE TABLE retrospective_action_items (
  id serial PRIMARY KEY, retrospective_id int REFERENCES sprint_retrospectives(id),
  owner text, item text, done boolean DEFAULT false);
CREATE TABLE chronicle_notes (
  id serial PRIMARY KEY, author text, body text, created_at timestamptz DEFAULT now());
CREATE TABLE chronicle_events (
  id bigserial PRIMARY KEY, kind text, payload jsonb, at timestamptz);
CREATE INDEX chronicle_events_at ON chronicle_events (at);

INSERT INTO sprint_retrospectives (sprint, held_on, summary)
  SELECT 'sprint-' || g, date '2024-01-01' + g * 14, md5(g::text) FROM generate_series(1, 99) g;
INSERT INTO retrospective_attendees (retrospective_id, name)
  SELECT 1 + g % 99, 'attendee-' || g FROM generate_series(1, 196) g;
INSERT INTO retrospective_action_items (retrospective_id, owner, item, done)
  SELECT 1 + g % 99, 'owner-' || g % 17, 'action ' || md5(g::text), g % 3 = 0
  FROM generate_series(1, 260) g;
INSERT INTO chronicle_notes (author, body)
  SELECT 'author-' || g % 23, repeat(md5(g::text), 4) FROM generate_series(1, 971) g;
INSERT INTO chronicle_events (kind, payload, at)
  SELECT (ARRAY['create','update','delete'])[1 + g % 3], jsonb_build_object('n', g, 'h', md5(g::text)),
         timestamptz '2025-01-01' + g * interval '1 minute'
  FROM generate_series(1, 200000) g;

-- What every real database has somewhere, and a clone must carry too: a
-- sequence no column owns, an attachment kept as a large object, and a
-- materialized view the dashboards read.
CREATE SEQUENCE chronicle_ticket_seq START 1000;
CREATE TABLE chronicle_attachments (
  id serial PRIMARY KEY, ticket int NOT NULL DEFAULT nextval('chronicle_ticket_seq'),
  name text, content oid);
INSERT INTO chronicle_attachments (name, content)
  VALUES ('retro-board.txt', lo_from_bytea(0, convert_to(repeat('sticky note ', 1000), 'UTF8')));
CREATE MATERIALIZED VIEW chronicle_daily_events AS
  SELECT date_trunc('day', at) AS day, kind, count(*) AS events FROM chronicle_events GROUP BY 1, 2;
CREATE UNIQUE INDEX chronicle_daily_events_day_kind ON chronicle_daily_events (day, kind);
