CREATE TABLE tickets (id bigint GENERATED ALWAYS AS IDENTITY, title text);
