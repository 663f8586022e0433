CREATE TABLE tickets (id bigint, title text);
