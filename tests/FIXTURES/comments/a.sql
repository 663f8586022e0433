CREATE TABLE things (id int PRIMARY KEY, label text);
COMMENT ON TABLE things IS 'old words';
COMMENT ON COLUMN things.label IS 'to be removed';
CREATE VIEW thing_labels AS SELECT label FROM things;
