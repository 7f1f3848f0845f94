-- A project schema with what a project export must handle: two schemas, a lookup shared by
-- projects, a self-referencing FK, a cycle, composite keys, a many-to-many link table, a
-- partitioned table, a table without a primary key and a column naming files.
CREATE SCHEMA ref;
CREATE SCHEMA app;
CREATE TABLE ref.statuses (id serial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE ref.units (code text PRIMARY KEY, label text NOT NULL);
CREATE TABLE app.projects (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL,
    status_id int NOT NULL REFERENCES ref.statuses,
    samples_written int NOT NULL DEFAULT 0
);
CREATE TABLE app.experiments (
    id bigserial PRIMARY KEY,
    project_id uuid NOT NULL REFERENCES app.projects,
    parent_id bigint REFERENCES app.experiments,          -- self-reference
    lead_sample_id bigint,                                -- cycle: experiments <-> samples
    status_id int REFERENCES ref.statuses,
    title text NOT NULL
);
CREATE TABLE app.samples (
    id bigserial PRIMARY KEY,
    experiment_id bigint NOT NULL REFERENCES app.experiments,
    label text NOT NULL
);
ALTER TABLE app.experiments ADD FOREIGN KEY (lead_sample_id) REFERENCES app.samples;
CREATE TABLE app.tags (id serial PRIMARY KEY, label text NOT NULL);
CREATE TABLE app.sample_tags (                            -- many-to-many link
    sample_id bigint REFERENCES app.samples,
    tag_id int REFERENCES app.tags,
    PRIMARY KEY (sample_id, tag_id)
);
CREATE TABLE app.measurements (                           -- partitioned, composite key
    sample_id bigint NOT NULL REFERENCES app.samples,
    seq int NOT NULL,
    taken_on date NOT NULL,
    value double precision,
    unit text REFERENCES ref.units,
    PRIMARY KEY (sample_id, seq, taken_on)
) PARTITION BY RANGE (taken_on);
CREATE TABLE app.measurements_2025 PARTITION OF app.measurements
    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE app.measurements_2026 PARTITION OF app.measurements
    FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE app.annotations (                            -- composite FK
    id bigserial PRIMARY KEY,
    sample_id bigint NOT NULL, seq int NOT NULL, taken_on date NOT NULL,
    note text,
    FOREIGN KEY (sample_id, seq, taken_on) REFERENCES app.measurements
);
CREATE TABLE app.documents (
    id serial PRIMARY KEY,
    experiment_id bigint NOT NULL REFERENCES app.experiments,
    path text
);
CREATE TABLE app.audit (project_id uuid REFERENCES app.projects, event text);  -- no key
CREATE TABLE app.unrelated (id serial PRIMARY KEY, note text);

INSERT INTO ref.statuses (name) VALUES ('active'), ('archived'), ('unused');
INSERT INTO ref.units VALUES ('mg', 'milligram'), ('ml', 'millilitre'), ('kg', 'kilogram');
INSERT INTO app.tags (label) VALUES ('red'), ('blue'), ('green');
INSERT INTO app.unrelated (note) VALUES ('not part of any project');
