CREATE TABLE boxes (id int PRIMARY KEY, w numeric NOT NULL, h numeric NOT NULL, area numeric GENERATED ALWAYS AS (w * h * 2) STORED);
INSERT INTO boxes VALUES (1, 2, 3);
