"""Stage 3 (inspect): the catalog queries behind our own snapshot, one per object kind.

Each returns (kind, key, definition, owners) rows; a kind starting with 'fact:' is structure the
corrections need (plain values, never SQL to paste), not part of the fingerprint. owners are the names
("schema.name", unquoted, as config ignore: globs are written) of what the row is or belongs to: the
relation, type or function itself, the table of a column, constraint, index, trigger, policy, comment or
grant; the relation and index rows also name an index's table and the table owning a sequence, and
snapshot.py carries that (and a partition's parents) over to every row naming the index, sequence or
partition. It leaves out the rows an ignore glob matches by these names, so the filter never has to
take a key apart. (Only the relation rows look anything up to find their owners: the rest name them
from the row itself, so reading them costs what it did before ignore:.)
"""

# Column order is not compared: a column added by ALTER TABLE lands last whatever the declaration says.
# Each query returns (kind, key, definition, owners) rows for objects in the schemas given as %(schemas)s,
# leaving out objects that belong to extensions (those are compared as the extension).
_NOT_EXTENSION_MEMBER = """
    NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass
                AND d.objid = {oid} AND d.deptype = 'e')
"""

_NONE = "ARRAY[]::text[]"  # schemas and extensions: never matched by an ignore glob


def _named(namespace: str, name: str) -> str:
    """owners: the one object named `name` in `namespace` (aliases of the query at hand)."""
    return f"ARRAY[{namespace}.nspname || '.' || {name}]"


# The name of a storage strategy ({} is an attstorage or typstorage value), and a column's compression.
_STORAGE = ("(CASE {} WHEN 'p' THEN 'plain' WHEN 'e' THEN 'external' WHEN 'm' THEN 'main' "
            "WHEN 'x' THEN 'extended' END)")
_COMPRESSION = "(CASE a.attcompression WHEN 'p' THEN 'pglz' WHEN 'l' THEN 'lz4' END)"
# A column's options that ALTER COLUMN ... SET (...) takes: some servers keep entries of their own there.
_COLUMN_OPTIONS = ("ARRAY(SELECT o FROM unnest(a.attoptions) o "
                   "WHERE split_part(o, '=', 1) IN ('n_distinct', 'n_distinct_inherited') ORDER BY 1)")

QUERIES = {
    "schema": """
        SELECT 'schema', n.nspname, '', """ + _NONE + """
        FROM pg_namespace n WHERE n.nspname = ANY(%(schemas)s)
    """,
    "extension": """
        SELECT 'extension', e.extname, 'in schema ' || n.nspname || ' version ' || e.extversion, """ + _NONE + """
        FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE n.nspname = ANY(%(schemas)s)
    """,
    "collation": """
        SELECT 'collation', n.nspname || '.' || co.collname,
               concat_ws(' ', 'provider ' || co.collprovider::text,
                 -- the ICU locale column is colliculocale on 15 and 16, colllocale from 17
                 'locale ' || coalesce(co.collcollate, to_jsonb(co) ->> 'colllocale', to_jsonb(co) ->> 'colliculocale'),
                 'ctype ' || co.collctype,
                 CASE WHEN NOT co.collisdeterministic THEN 'nondeterministic' END),
               """ + _named("n", "co.collname") + """
        FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace
        WHERE n.nspname = ANY(%(schemas)s)
          AND """ + _NOT_EXTENSION_MEMBER.format(catalog="pg_collation", oid="co.oid") + """
    """,
    "relation": """
        SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view'
                              WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence'
                              WHEN 'f' THEN 'foreign table' WHEN 'c' THEN 'composite type' END,
               n.nspname || '.' || c.relname,
               concat_ws(' | ',
                 'kind ' || c.relkind::text,
                 CASE c.relpersistence WHEN 'u' THEN 'unlogged' END,
                 CASE WHEN c.relkind = 'p' THEN 'partition by ' || pg_get_partkeydef(c.oid) END,
                 (SELECT 'partition of ' || pn.nspname || '.' || pc.relname || ' '
                         || coalesce(pg_get_expr(c.relpartbound, c.oid), '')
                  FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent
                  JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE i.inhrelid = c.oid),
                 CASE WHEN c.relrowsecurity THEN 'row level security enabled' END,
                 CASE WHEN c.relforcerowsecurity THEN 'row level security forced' END,
                 CASE WHEN c.relkind IN ('r', 'p') AND c.relreplident <> 'd' THEN 'replica identity ' || (
                     CASE c.relreplident WHEN 'f' THEN 'full' WHEN 'n' THEN 'nothing'
                          ELSE 'using index ' || coalesce((SELECT ic.relname FROM pg_index x
                              JOIN pg_class ic ON ic.oid = x.indexrelid
                              WHERE x.indrelid = c.oid AND x.indisreplident), '?') END) END,
                 'options ' || NULLIF(array_to_string(ARRAY(SELECT unnest(c.reloptions) ORDER BY 1), ','), ''),
                 CASE WHEN c.relkind IN ('v', 'm') THEN 'as ' || pg_get_viewdef(c.oid) END,
                 (SELECT format('sequence %%s start %%s increment %%s min %%s max %%s cache %%s%%s',
                                format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin,
                                s.seqmax, s.seqcache, CASE WHEN s.seqcycle THEN ' cycle' END)
                  FROM pg_sequence s WHERE s.seqrelid = c.oid),
                 'owned by ' || owning.relname || '.' || owning.attname
               ),
               """ + _named("n", "c.relname") + """ || array_remove(ARRAY[owning.nspname || '.' || owning.relname], NULL)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        -- a sequence's owning column (identity, serial or OWNED BY): in its definition and its owners
        LEFT JOIN LATERAL (
            SELECT rn.nspname, rc.relname, a.attname
            FROM pg_depend d JOIN pg_class rc ON rc.oid = d.refobjid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
            JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
            WHERE c.relkind = 'S' AND d.classid = 'pg_class'::regclass AND d.objid = c.oid
              AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')) owning ON true
        WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
          AND (c.relkind <> 'c' OR EXISTS (SELECT 1 FROM pg_type t WHERE t.typrelid = c.oid AND t.typtype = 'c'))
          AND """ + _NOT_EXTENSION_MEMBER.format(catalog="pg_class", oid="c.oid") + """
    """,
    "column": """
        SELECT 'column', n.nspname || '.' || c.relname || '.' || a.attname,
               concat_ws(' ', format_type(a.atttypid, a.atttypmod),
                 CASE WHEN a.attcollation <> t.typcollation THEN 'collate ' || co.collname END,
                 -- PostgreSQL 18 names a column's NOT NULL constraint (none before: just 'not null'); a
                 -- partition's follows how it became one (created as one, or attached), not a declaration,
                 -- and cannot be renamed once inherited
                 CASE WHEN a.attnotnull THEN 'not null' || coalesce(' named ' || (
                     SELECT nn.conname FROM pg_constraint nn
                     WHERE nn.conrelid = c.oid AND nn.contype = 'n' AND nn.conkey[1] = a.attnum
                       AND NOT c.relispartition), '') END,
                 -- a column of a child table (INHERITS, not a partition): from its parent, or its own too
                 CASE WHEN a.attinhcount > 0 AND NOT c.relispartition
                      THEN CASE WHEN a.attislocal THEN 'inherited and local' ELSE 'inherited' END END,
                 CASE a.attidentity WHEN 'a' THEN 'generated always as identity'
                                    WHEN 'd' THEN 'generated by default as identity' END,
                 CASE WHEN a.attgenerated = 's' THEN 'generated always as (' || pg_get_expr(ad.adbin, ad.adrelid) || ') stored'
                      WHEN ad.adbin IS NOT NULL THEN 'default ' || pg_get_expr(ad.adbin, ad.adrelid) END,
                 -- settings a column keeps beside its definition, shown only when not the default
                 'storage ' || """ + _STORAGE.format("NULLIF(a.attstorage, t.typstorage)") + """,
                 'compression ' || """ + _COMPRESSION + """,
                 CASE WHEN coalesce(a.attstattarget::int, -1) >= 0 THEN 'statistics ' || a.attstattarget END,
                 'options ' || NULLIF(array_to_string(""" + _COLUMN_OPTIONS + """, ','), '')),
               """ + _named("n", "c.relname") + """
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_collation co ON co.oid = a.attcollation
        LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
        WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
          AND a.attnum > 0 AND NOT a.attisdropped
          AND """ + _NOT_EXTENSION_MEMBER.format(catalog="pg_class", oid="c.oid") + """
    """,
    "constraint": """
        SELECT 'constraint', n.nspname || '.' || c.relname || '.' || con.conname,
               concat_ws(' ', pg_get_constraintdef(con.oid),
                 CASE WHEN NOT con.convalidated THEN '(not validated)' END,
                 CASE WHEN NOT con.conislocal THEN '(inherited)' END),
               """ + _named("n", "c.relname") + """
        FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND con.contype <> 'n'
    """,
    "domain constraint": """
        SELECT 'domain constraint', n.nspname || '.' || t.typname || '.' || con.conname,
               pg_get_constraintdef(con.oid), """ + _named("n", "t.typname") + """
        FROM pg_constraint con JOIN pg_type t ON t.oid = con.contypid
        JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND con.contype <> 'n'
    """,
    "index": """
        SELECT 'index', n.nspname || '.' || ic.relname,
               concat_ws(' ', pg_get_indexdef(i.indexrelid),
                 CASE WHEN NOT i.indisvalid THEN '(invalid)' END,
                 (SELECT '(attached to ' || pn.nspname || '.' || pc.relname || ')'
                  FROM pg_inherits ih JOIN pg_class pc ON pc.oid = ih.inhparent
                  JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE ih.inhrelid = i.indexrelid)),
               ARRAY[n.nspname || '.' || ic.relname, tn.nspname || '.' || c.relname]
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = ic.relnamespace
        JOIN pg_namespace tn ON tn.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s)
          AND """ + _NOT_EXTENSION_MEMBER.format(catalog="pg_class", oid="c.oid") + """
    """,
    "policy": """
        SELECT 'policy', n.nspname || '.' || c.relname || '.' || p.polname,
               concat_ws(' ', CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END,
                 'for ' || CASE p.polcmd WHEN 'r' THEN 'select' WHEN 'a' THEN 'insert' WHEN 'w' THEN 'update'
                                         WHEN 'd' THEN 'delete' ELSE 'all' END,
                 'to ' || array_to_string(ARRAY(
                     SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r) END
                     FROM unnest(p.polroles) r ORDER BY 1), ','),
                 'using (' || pg_get_expr(p.polqual, p.polrelid) || ')',
                 'with check (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')'),
               """ + _named("n", "c.relname") + """
        FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s)
    """,
    "function": """
        SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END,
               n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
               CASE WHEN p.prokind = 'a' THEN pg_get_function_result(p.oid) || ' ' || p.prosrc
                    ELSE pg_get_functiondef(p.oid) END,
               """ + _named("n", "p.proname") + """
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = ANY(%(schemas)s)
          AND """ + _NOT_EXTENSION_MEMBER.format(catalog="pg_proc", oid="p.oid") + """
    """,
    "type": """
        SELECT CASE t.typtype WHEN 'e' THEN 'enum' WHEN 'd' THEN 'domain' ELSE 'range type' END,
               n.nspname || '.' || t.typname,
               CASE t.typtype
                 WHEN 'e' THEN array_to_string(ARRAY(SELECT quote_literal(e.enumlabel) FROM pg_enum e
                                                     WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder), ', ')
                 WHEN 'd' THEN concat_ws(' ', format_type(t.typbasetype, t.typtypmod),
                                         CASE WHEN t.typnotnull THEN 'not null' END,
                                         'default ' || t.typdefault)
                 -- A range type's options as CREATE TYPE ... AS RANGE (...) takes them (types.range).
                 ELSE (SELECT concat_ws(', ', 'subtype = ' || format_type(r.rngsubtype, NULL),
                                        'subtype_opclass = ' || quote_ident(ocn.nspname) || '.' || quote_ident(oc.opcname),
                                        'collation = ' || NULLIF(r.rngcollation, 0)::regcollation::text,
                                        'canonical = ' || NULLIF(r.rngcanonical, 0)::regproc::text,
                                        'subtype_diff = ' || NULLIF(r.rngsubdiff, 0)::regproc::text)
                       FROM pg_range r JOIN pg_opclass oc ON oc.oid = r.rngsubopc
                       JOIN pg_namespace ocn ON ocn.oid = oc.opcnamespace
                       WHERE r.rngtypid = t.oid) END,
               """ + _named("n", "t.typname") + """
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND t.typtype IN ('e', 'd', 'r')
          AND """ + _NOT_EXTENSION_MEMBER.format(catalog="pg_type", oid="t.oid") + """
    """,
    "trigger": """
        SELECT 'trigger', n.nspname || '.' || c.relname || '.' || tg.tgname,
               concat_ws(' ', pg_get_triggerdef(tg.oid),
                         CASE tg.tgenabled WHEN 'D' THEN '(disabled)' WHEN 'R' THEN '(replica)'
                                           WHEN 'A' THEN '(always)' END),
               """ + _named("n", "c.relname") + """
        FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND NOT tg.tgisinternal
    """,
    "comment": """
        SELECT 'comment', refs.ref, d.description, refs.owners
        FROM pg_description d
        CROSS JOIN LATERAL (
            SELECT format('%%s %%I.%%I', CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                            WHEN 'S' THEN 'SEQUENCE' WHEN 'i' THEN 'INDEX' WHEN 'I' THEN 'INDEX'
                            WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'c' THEN 'TYPE' ELSE 'TABLE' END,
                          n.nspname, c.relname) AS ref, """ + _named("n", "c.relname") + """ AS owners
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE d.classoid = 'pg_class'::regclass AND c.oid = d.objoid AND d.objsubid = 0
              AND n.nspname = ANY(%(schemas)s)
            UNION ALL
            SELECT format('COLUMN %%I.%%I.%%I', n.nspname, c.relname, a.attname), """ + _named("n", "c.relname") + """
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid
            WHERE d.classoid = 'pg_class'::regclass AND c.oid = d.objoid AND d.objsubid > 0
              AND n.nspname = ANY(%(schemas)s)
            UNION ALL
            SELECT format('%%s %%I.%%I(%%s)', CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE'
                                                ELSE 'FUNCTION' END,
                          n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)), """ + _named("n", "p.proname") + """
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE d.classoid = 'pg_proc'::regclass AND p.oid = d.objoid AND n.nspname = ANY(%(schemas)s)
            UNION ALL
            SELECT format('POLICY %%I ON %%I.%%I', p.polname, n.nspname, c.relname), """ + _named("n", "c.relname") + """
            FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE d.classoid = 'pg_policy'::regclass AND p.oid = d.objoid AND n.nspname = ANY(%(schemas)s)
            UNION ALL
            SELECT format('CONSTRAINT %%I ON %%I.%%I', con.conname, n.nspname, c.relname), """ + _named("n", "c.relname") + """
            FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE d.classoid = 'pg_constraint'::regclass AND con.oid = d.objoid AND n.nspname = ANY(%(schemas)s)
            UNION ALL
            SELECT format('TRIGGER %%I ON %%I.%%I', tg.tgname, n.nspname, c.relname), """ + _named("n", "c.relname") + """
            FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE d.classoid = 'pg_trigger'::regclass AND tg.oid = d.objoid AND n.nspname = ANY(%(schemas)s)
            UNION ALL
            SELECT format('%%s %%I.%%I', CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, n.nspname, t.typname),
                   """ + _named("n", "t.typname") + """
            FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
            WHERE d.classoid = 'pg_type'::regclass AND t.oid = d.objoid AND n.nspname = ANY(%(schemas)s)
            UNION ALL
            SELECT format('SCHEMA %%I', n.nspname), """ + _NONE + """
            FROM pg_namespace n
            WHERE d.classoid = 'pg_namespace'::regclass AND n.oid = d.objoid AND n.nspname = ANY(%(schemas)s)
        ) refs
    """,
    # Facts: structure the corrections need, not part of the fingerprint (it is in the texts above).
    "fact:relkind": """
        SELECT 'fact:relkind', n.nspname || '.' || c.relname, c.relkind::text, """ + _named("n", "c.relname") + """
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY(%(schemas)s)
    """,
    "fact:qualified name": """
        SELECT 'fact:qualified name', n.nspname || '.' || c.relname, format('%%I.%%I', n.nspname, c.relname),
               """ + _named("n", "c.relname") + """
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY(%(schemas)s)
    """,
    "fact:forced rls": """
        SELECT 'fact:forced rls', n.nspname || '.' || c.relname, '', """ + _named("n", "c.relname") + """
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND c.relforcerowsecurity
    """,
    "fact:attached index": """
        SELECT 'fact:attached index', n.nspname || '.' || ic.relname, pn.nspname || '.' || pc.relname,
               """ + _named("n", "ic.relname") + """
        FROM pg_inherits ih JOIN pg_class ic ON ic.oid = ih.inhrelid AND ic.relkind IN ('i', 'I')
        JOIN pg_namespace n ON n.oid = ic.relnamespace
        JOIN pg_class pc ON pc.oid = ih.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace
        WHERE n.nspname = ANY(%(schemas)s)
    """,
    "fact:index table": """
        SELECT 'fact:index table', n.nspname || '.' || ic.relname, tn.nspname || '.' || c.relname,
               ARRAY[n.nspname || '.' || ic.relname, tn.nspname || '.' || c.relname]
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace
        JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace tn ON tn.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s)
    """,
    "fact:partition parent": """
        SELECT 'fact:partition parent', n.nspname || '.' || c.relname, pn.nspname || '.' || pc.relname, """ + _named("n", "c.relname") + """
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid AND c.relispartition
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p')
    """,
    "fact:partition bound": """
        SELECT 'fact:partition bound', n.nspname || '.' || c.relname, pg_get_expr(c.relpartbound, c.oid),
               """ + _named("n", "c.relname") + """
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND c.relispartition
    """,
    "fact:partition key": """
        SELECT 'fact:partition key', n.nspname || '.' || c.relname, pg_get_partkeydef(c.oid),
               """ + _named("n", "c.relname") + """
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND c.relkind = 'p'
    """,
    "fact:cloned trigger": """
        SELECT 'fact:cloned trigger', n.nspname || '.' || c.relname || '.' || tg.tgname, '', """ + _named("n", "c.relname") + """
        FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND NOT tg.tgisinternal AND tg.tgparentid <> 0
    """,
    "fact:replica identity": """
        SELECT 'fact:replica identity', n.nspname || '.' || c.relname,
               CASE c.relreplident WHEN 'i' THEN 'using index ' || quote_ident(coalesce(
                   (SELECT ic.relname FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid
                    WHERE x.indrelid = c.oid AND x.indisreplident), '?'))
                    WHEN 'f' THEN 'full' WHEN 'n' THEN 'nothing' ELSE 'default' END, """ + _named("n", "c.relname") + """
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p')
    """,
    "fact:inherited column": """
        SELECT 'fact:inherited column', n.nspname || '.' || c.relname || '.' || a.attname, '', """ + _named("n", "c.relname") + """
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND a.attnum > 0 AND NOT a.attisdropped AND a.attinhcount > 0 AND NOT a.attislocal
    """,
    "fact:not null name": """
        SELECT 'fact:not null name', n.nspname || '.' || c.relname || '.' || a.attname, nn.conname,
               """ + _named("n", "c.relname") + """
        FROM pg_constraint nn JOIN pg_class c ON c.oid = nn.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = nn.conkey[1]
        WHERE n.nspname = ANY(%(schemas)s) AND nn.contype = 'n'
    """,
    "fact:row security": """
        SELECT 'fact:row security', n.nspname || '.' || c.relname, '', """ + _named("n", "c.relname") + """
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND c.relrowsecurity
    """,
    "fact:view options": """
        SELECT 'fact:view options', n.nspname || '.' || c.relname,
               array_to_string(ARRAY(SELECT unnest(c.reloptions) ORDER BY 1), ','), """ + _named("n", "c.relname") + """
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('v', 'm')
    """,
    # The relations a view or materialized view reads (through its rewrite rule), as "schema.name":
    # a grant on one over a table with row level security is a security difference (security_drift.py).
    "fact:reads": """
        SELECT 'fact:reads', n.nspname || '.' || c.relname,
               ARRAY(SELECT DISTINCT rn.nspname || '.' || r.relname
                     FROM pg_rewrite rw JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
                     JOIN pg_class r ON r.oid = d.refobjid AND d.refclassid = 'pg_class'::regclass AND r.oid <> c.oid
                     JOIN pg_namespace rn ON rn.oid = r.relnamespace
                     WHERE rw.ev_class = c.oid ORDER BY 1),
               """ + _named("n", "c.relname") + """
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('v', 'm')
    """,
    # The columns a view or materialized view reads ("schema.table.column"; "schema.table.*" for a
    # whole-row reference): altering any other column's type leaves it valid, so it need not be rebuilt.
    "fact:reads columns": """
        SELECT 'fact:reads columns', n.nspname || '.' || c.relname,
               ARRAY(SELECT DISTINCT rn.nspname || '.' || r.relname || '.' || coalesce(a.attname, '*')
                     FROM pg_rewrite rw JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
                     JOIN pg_class r ON r.oid = d.refobjid AND d.refclassid = 'pg_class'::regclass AND r.oid <> c.oid
                     JOIN pg_namespace rn ON rn.oid = r.relnamespace
                     LEFT JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum = d.refobjsubid AND d.refobjsubid > 0
                     WHERE rw.ev_class = c.oid ORDER BY 1),
               """ + _named("n", "c.relname") + """
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('v', 'm')
    """,
    "fact:sequence": """
        SELECT 'fact:sequence', n.nspname || '.' || c.relname,
               json_build_object('type', format_type(s.seqtypid, NULL), 'increment', s.seqincrement::text,
                                 'min', s.seqmin::text, 'max', s.seqmax::text, 'start', s.seqstart::text,
                                 'cache', s.seqcache::text, 'cycle', s.seqcycle),
               """ + _named("n", "c.relname") + """
        FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s)
    """,
    # A column's storage, compression, statistics target and options where any is not the default.
    "fact:column settings": """
        SELECT 'fact:column settings', n.nspname || '.' || c.relname || '.' || a.attname,
               json_build_object('storage', """ + _STORAGE.format("NULLIF(a.attstorage, t.typstorage)") + """,
                                 'type storage', """ + _STORAGE.format("t.typstorage") + """,
                                 'compression', """ + _COMPRESSION + """,
                                 'statistics', CASE WHEN coalesce(a.attstattarget::int, -1) >= 0 THEN a.attstattarget END,
                                 'options', """ + _COLUMN_OPTIONS + """, 'relkind', c.relkind),
               """ + _named("n", "c.relname") + """
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_type t ON t.oid = a.atttypid
        WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'm') AND a.attnum > 0 AND NOT a.attisdropped
          AND (a.attstorage <> t.typstorage OR a.attcompression <> '' OR coalesce(a.attstattarget::int, -1) >= 0
               OR cardinality(""" + _COLUMN_OPTIONS + """) > 0)
    """,
    "fact:generated column": """
        SELECT 'fact:generated column', n.nspname || '.' || c.relname || '.' || a.attname,
               json_build_object('type', format_type(a.atttypid, a.atttypmod),
                                 'expression', pg_get_expr(ad.adbin, ad.adrelid)),
               """ + _named("n", "c.relname") + """
        FROM pg_attribute a JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
        JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND a.attgenerated = 's' AND NOT a.attisdropped
    """,
    "fact:inherited constraint": """
        SELECT 'fact:inherited constraint', n.nspname || '.' || c.relname || '.' || con.conname, '', """ + _named("n", "c.relname") + """
        FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND NOT con.conislocal
    """,
}

# Compared only when privileges are managed (privileges: true in reconcile.yaml).
_GRANTEE = "CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END"
_PRIVILEGES = ("string_agg(a.privilege_type || CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END, "
               "', ' ORDER BY a.privilege_type)")
# Grants to other roles than the owner (ownership itself is not managed), one row per object and grantee;
# the owner's own, only where it lacks some (below).
# A NULL acl means the defaults (EXECUTE to PUBLIC on a function): read them, so revoking one shows.
PRIVILEGE_QUERIES: dict[str, str] = {
    "relation grant": f"""
        SELECT 'grant', format('%%s %%I.%%I TO %%s', CASE WHEN c.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
                               n.nspname, c.relname, {_GRANTEE}), {_PRIVILEGES}, {_named("n", "c.relname")}
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace CROSS JOIN LATERAL aclexplode(coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) a
        WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND a.grantee <> c.relowner
        GROUP BY c.relkind, n.nspname, c.relname, a.grantee
    """,
    "function grant": f"""
        SELECT 'grant', format('FUNCTION %%I.%%I(%%s) TO %%s', n.nspname, p.proname,
                               pg_get_function_identity_arguments(p.oid), {_GRANTEE}), {_PRIVILEGES},
               {_named("n", "p.proname")}
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
        WHERE n.nspname = ANY(%(schemas)s) AND a.grantee <> p.proowner
        GROUP BY n.nspname, p.proname, p.oid, a.grantee
    """,
    "schema grant": f"""
        SELECT 'grant', format('SCHEMA %%I TO %%s', n.nspname, {_GRANTEE}), {_PRIVILEGES}, {_NONE}
        FROM pg_namespace n CROSS JOIN LATERAL aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
        WHERE n.nspname = ANY(%(schemas)s) AND a.grantee <> n.nspowner
        GROUP BY n.nspname, a.grantee
    """,
}


def _owner_grants(target: str, acl: str, kind: str, owner: str, source: str, where: str, named: str) -> str:
    """The owner's own privileges on each object, as 'grant', '<target> TO OWNER' (whoever owns it: the
    role that applies a plan owns what it creates), only where the owner revoked some from itself."""
    aggregate = f"coalesce({_PRIVILEGES}, '')"
    return f"""
        SELECT 'grant', {target} || ' TO OWNER', own.privileges, {named}
        FROM {source}
        CROSS JOIN LATERAL (SELECT {aggregate} AS privileges
                            FROM aclexplode(coalesce({acl}, acldefault({kind}, {owner}))) a WHERE a.grantee = {owner}) own
        CROSS JOIN LATERAL (SELECT {aggregate} AS privileges
                            FROM aclexplode(acldefault({kind}, {owner})) a WHERE a.grantee = {owner}) defaults
        WHERE {where} AND own.privileges <> defaults.privileges
    """


PRIVILEGE_QUERIES.update({
    "relation owner grant": _owner_grants(
        "format('%%s %%I.%%I', CASE WHEN c.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, n.nspname, c.relname)",
        "c.relacl", "CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::\"char\"", "c.relowner",
        "pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace",
        "n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')", _named("n", "c.relname")),
    "function owner grant": _owner_grants(
        "format('FUNCTION %%I.%%I(%%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))",
        "p.proacl", "'f'", "p.proowner", "pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace",
        "n.nspname = ANY(%(schemas)s)", _named("n", "p.proname")),
    "schema owner grant": _owner_grants(
        "format('SCHEMA %%I', n.nspname)", "n.nspacl", "'n'", "n.nspowner", "pg_namespace n",
        "n.nspname = ANY(%(schemas)s)", _NONE),
})


def queries_for(privileges: bool) -> list[str]:
    """The queries a snapshot runs: grants only when privileges are managed."""
    return list(QUERIES.values()) + (list(PRIVILEGE_QUERIES.values()) if privileges else [])
