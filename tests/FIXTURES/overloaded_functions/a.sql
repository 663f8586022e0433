CREATE FUNCTION area(r int) RETURNS int LANGUAGE sql AS $$ SELECT r * r $$;
CREATE FUNCTION area(w int, h int) RETURNS int LANGUAGE sql AS $$ SELECT w * h $$;
