CREATE TABLE names (id int PRIMARY KEY, n text COLLATE "POSIX", m text, o text COLLATE "POSIX");
CREATE INDEX names_n ON names (n COLLATE "C");
CREATE TABLE codes (c text COLLATE "POSIX" PRIMARY KEY, d varchar(10) COLLATE "C");
