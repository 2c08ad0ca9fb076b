//! `logged_in_users`: the entries of `/var/run/utmp` (glibc's 384-byte `struct utmp`, as on
//! x86_64 and aarch64). Empty where no utmp is kept, as in most containers.

use crate::table::{Column, HostTable, Row, ScanContext, TableError};

/// osquery's `logged_in_users` table.
pub struct LoggedInUsers;

impl HostTable for LoggedInUsers {
    const NAME: &'static str = "logged_in_users";
    const COLUMNS: &'static [Column] = &[
        Column::text("type"),
        Column::text("user"),
        Column::text("tty"),
        Column::text("host"),
        Column::bigint("time"),
        Column::integer("pid"),
    ];

    fn rows(&self, _cx: &mut ScanContext<'_>) -> Result<Vec<Row>, TableError> {
        let data = std::fs::read("/var/run/utmp")
            .or_else(|_| std::fs::read("/run/utmp"))
            .unwrap_or_default();
        Ok(parse_utmp(&data))
    }
}

const RECORD: usize = 384;

fn parse_utmp(data: &[u8]) -> Vec<Row> {
    data.chunks_exact(RECORD)
        .filter_map(|r| {
            let kind = i16::from_ne_bytes([r[0], r[1]]);
            let name = match kind {
                1 => "runlevel",
                2 => "boot_time",
                3 => "new_time",
                4 => "old_time",
                5 => "init",
                6 => "login",
                7 => "user",
                8 => "dead",
                9 => "accounting",
                _ => return None,
            };
            let int = |at: usize| i32::from_ne_bytes([r[at], r[at + 1], r[at + 2], r[at + 3]]);
            let text = |from: usize, len: usize| {
                let field = &r[from..from + len];
                let end = field.iter().position(|&b| b == 0).unwrap_or(len);
                String::from_utf8_lossy(&field[..end]).into_owned()
            };
            // Offsets of glibc's struct utmp: ut_type 0, ut_pid 4, ut_line 8 (32),
            // ut_id 40 (4), ut_user 44 (32), ut_host 76 (256), ut_exit 332, ut_session 336,
            // ut_tv.tv_sec 340.
            Some(vec![
                name.into(),
                text(44, 32).into(),
                text(8, 32).into(),
                text(76, 256).into(),
                i64::from(int(340)).into(),
                int(4).into(),
            ])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn utmp_user_records_parse() {
        let mut r = vec![0u8; RECORD];
        r[0..2].copy_from_slice(&7i16.to_ne_bytes());
        r[4..8].copy_from_slice(&4242i32.to_ne_bytes());
        r[8..13].copy_from_slice(b"pts/0");
        r[44..47].copy_from_slice(b"bob");
        r[76..85].copy_from_slice(b"10.0.0.99");
        r[340..344].copy_from_slice(&1_700_000_000i32.to_ne_bytes());
        let empty = vec![0u8; RECORD];
        let rows = parse_utmp(&[r, empty].concat());
        assert_eq!(
            rows,
            vec![vec![
                "user".into(),
                "bob".into(),
                "pts/0".into(),
                "10.0.0.99".into(),
                Value::Integer(1_700_000_000),
                Value::Integer(4242)
            ]]
        );
    }
}
