-- amprenta-backup sample schema: the objects a backup/restore must carry over intact.
-- Re-runnable: it drops its own schemas first. Data is loaded by dataset.py.

DROP SCHEMA IF EXISTS app, billing, "données" CASCADE;

CREATE SCHEMA app;
CREATE SCHEMA billing;
CREATE SCHEMA "données";
COMMENT ON SCHEMA app IS 'Customers, orders and documents of the sample shop';
COMMENT ON SCHEMA "données" IS 'Données de référence (identifiants non ASCII)';

-- Types ---------------------------------------------------------------------------------
CREATE TYPE app.order_status AS ENUM ('pending', 'paid', 'shipped', 'cancelled', 'refunded');
CREATE DOMAIN app.email AS text CHECK (VALUE ~ '^[^@[:space:]]+@[^@[:space:]]+$');
CREATE DOMAIN billing.amount AS numeric(14, 2) CHECK (VALUE >= 0);
COMMENT ON DOMAIN billing.amount IS 'A non-negative amount of money, two decimals';

-- Sequences -------------------------------------------------------------------------------
CREATE SEQUENCE billing.invoice_no_seq START WITH 100000 INCREMENT BY 7;
CREATE SEQUENCE app.ticket_seq;  -- standalone, advanced with setval by the loader

-- Tables ----------------------------------------------------------------------------------
CREATE TABLE app.customers (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email       app.email NOT NULL UNIQUE,
    full_name   text NOT NULL,
    tags        text[] NOT NULL DEFAULT '{}',
    profile     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz
);
COMMENT ON TABLE app.customers IS 'People who order things';
COMMENT ON COLUMN app.customers.profile IS 'Free-form preferences (jsonb)';

CREATE TABLE app.orders (
    id          bigserial PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES app.customers (id) ON DELETE CASCADE,
    status      app.order_status NOT NULL DEFAULT 'pending',
    quantities  integer[] NOT NULL,
    total       billing.amount NOT NULL,
    ordered_at  timestamptz NOT NULL,
    note        text,
    CONSTRAINT orders_quantities_nonempty CHECK (cardinality(quantities) > 0)
);
CREATE INDEX orders_customer_time_idx ON app.orders (customer_id, ordered_at DESC);
CREATE INDEX customers_profile_gin ON app.customers USING gin (profile);

CREATE TABLE app.documents (
    id          integer PRIMARY KEY,
    title       text NOT NULL,
    body        text NOT NULL,
    payload     bytea NOT NULL,
    body_md5    text GENERATED ALWAYS AS (md5(body)) STORED
);
COMMENT ON TABLE app.documents IS 'Large values (TOAST): bodies over 100 kB, every byte value';

CREATE TABLE app.events (          -- no primary key on purpose
    occurred_at timestamptz NOT NULL,
    kind        text NOT NULL,
    detail      jsonb,
    ratio       double precision
);

CREATE TABLE billing.invoices (
    invoice_no  bigint NOT NULL DEFAULT nextval('billing.invoice_no_seq'),
    order_id    bigint NOT NULL REFERENCES app.orders (id),
    issued_on   date NOT NULL,
    amount      billing.amount NOT NULL,
    currency    char(3) NOT NULL DEFAULT 'EUR',
    PRIMARY KEY (invoice_no, issued_on)
) PARTITION BY RANGE (issued_on);
CREATE TABLE billing.invoices_2025 PARTITION OF billing.invoices
    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE billing.invoices_2026 PARTITION OF billing.invoices
    FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
COMMENT ON TABLE billing.invoices IS 'Invoices, range-partitioned by year';

CREATE TABLE "données"."café" (
    "numéro"    integer PRIMARY KEY,
    "libellé"   text NOT NULL,
    "prix_€"    numeric(10, 2) NOT NULL CHECK ("prix_€" > 0),
    "taux"      numeric,
    "servi_à"   timestamptz
);
COMMENT ON COLUMN "données"."café"."prix_€" IS 'Prix en euros (€)';

-- Function, trigger, view -----------------------------------------------------------------
CREATE FUNCTION app.normalize_email() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.email := lower(trim(NEW.email));
    IF NEW.full_name = '' THEN
        RAISE EXCEPTION 'customer % has an empty name', NEW.email;
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION app.normalize_email() IS 'Lower-cases e-mail addresses on write';

CREATE TRIGGER customers_normalize_email
    BEFORE INSERT OR UPDATE OF email, full_name ON app.customers
    FOR EACH ROW EXECUTE FUNCTION app.normalize_email();

CREATE VIEW app.customer_totals AS
SELECT c.id, c.email, count(o.id) AS orders, coalesce(sum(o.total), 0) AS spent
FROM app.customers c
LEFT JOIN app.orders o ON o.customer_id = c.id
GROUP BY c.id, c.email;
COMMENT ON VIEW app.customer_totals IS 'Orders and money spent per customer';
