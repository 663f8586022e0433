CREATE FUNCTION area(r int) RETURNS int LANGUAGE sql AS $$ SELECT r * r * 3 $$;
CREATE FUNCTION area(w int, h int, d int) RETURNS int LANGUAGE sql AS $$ SELECT w * h * d $$;
CREATE FUNCTION area(t text) RETURNS text LANGUAGE sql AS $$ SELECT t $$;
