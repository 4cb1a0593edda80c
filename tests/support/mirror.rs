//! What the mirror's fault and rebuild tests share: two tables that change independently, a digest of
//! their rows the tests compute themselves, and reading the mirror's state on the emulator's cluster.
#![allow(dead_code)]

use super::world::World;

/// Two tables that change independently (two families, merged side by side on the sync's two streams).
pub const TWO_TABLES: &str = "
SET ROLE postgres;
CREATE TABLE public.entries (id int PRIMARY KEY, v int NOT NULL, note text);
INSERT INTO public.entries SELECT g, g, 'entry ' || g FROM generate_series(1, 40000) g;
CREATE TABLE public.gated (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO public.gated SELECT g, g FROM generate_series(1, 2000) g;
RESET ROLE;
";

/// Both tables' rows, counted and digested in a canonical order by the test itself.
pub const CONTENT: &str = "
SELECT (SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY t.id)) FROM public.entries t)
    || ' ' || (SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY t.id)) FROM public.gated t);
";

/// The id of the branch `supaneon-mirror`.
pub fn mirror_id(world: &World) -> String {
    world.branch("supaneon-mirror").expect("the mirror")["id"]
        .as_str()
        .expect("id")
        .to_string()
}

/// The physical database of the mirror on the emulator's cluster.
pub fn mirror_db(world: &World) -> String {
    world
        .emu
        .physical_database(&mirror_id(world), "neondb")
        .expect("the mirror's database")
}

/// `t` or `f`: whether the mirror's state records a verified sync.
pub fn mirror_verified(world: &World, db: &str) -> String {
    world
        .neon_pg
        .psql(db, "SELECT verified FROM supaneon_sync.mirror_state")
        .trim()
        .to_string()
}
