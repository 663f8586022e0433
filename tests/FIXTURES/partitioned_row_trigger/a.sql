CREATE TABLE readings (id bigint NOT NULL, taken date NOT NULL, value numeric, PRIMARY KEY (id, taken)) PARTITION BY RANGE (taken);
CREATE TABLE readings_2025 PARTITION OF readings FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE FUNCTION readings_touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.value := coalesce(NEW.value, 0); RETURN NEW; END $$;
