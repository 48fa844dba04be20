//! Cursor pagination. A list answers `{"items": [...], "next_cursor": ...}`;
//! `next_cursor` is `null` on the last page, otherwise a string to pass
//! back as `cursor` (with the same filters) for the next page. A cursor
//! names its list and the position after the page's last item (`d:<device
//! id>`, `o:<outbox id>`), so pages neither skip nor repeat items when rows
//! are added. Every cursor of its list's form ([`CursorKind::pattern`], the
//! form the OpenAPI document states) is a position the list could give
//! out; anything else (another list's cursor, a device id with a NUL byte)
//! is refused with 400 before any query.

use serde::Serialize;
use shadowbox_core::DeviceId;
use shadowbox_core::id::{ID_PATTERN, MAX_ID_LEN};
use utoipa::ToSchema;

use crate::problem::ApiError;

/// Page size when `limit` is absent.
pub const DEFAULT_LIMIT: i64 = 100;
/// Largest accepted `limit`.
pub const MAX_LIMIT: i64 = 1000;
/// Most digits of an outbox row id in a cursor: every such number fits
/// an `i64`.
const MAX_ROW_ID_DIGITS: usize = 18;

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Which list a cursor belongs to, so one list's cursor is refused by
/// another.
#[derive(Debug, Clone, Copy)]
pub enum CursorKind {
    /// Devices, by device id.
    Devices,
    /// Outbox rows, by id descending.
    Outbox,
    /// A device's history, by id descending.
    History,
    /// Rollouts, by id descending.
    Rollouts,
}

impl CursorKind {
    fn tag(self) -> &'static str {
        match self {
            Self::Devices => "d",
            Self::Outbox => "o",
            Self::History => "h",
            Self::Rollouts => "r",
        }
    }

    /// Whether `position` is one this list gives out: a valid device id,
    /// a row id.
    fn holds(self, position: &str) -> bool {
        match self {
            Self::Devices => DeviceId::parse(position).is_ok(),
            Self::Outbox | Self::History | Self::Rollouts => {
                (1..=MAX_ROW_ID_DIGITS).contains(&position.len())
                    && position.bytes().all(|b| b.is_ascii_digit())
            }
        }
    }

    /// This list's cursors as a regular expression, for the OpenAPI
    /// document; a test keeps it equal to what [`PageRequest::new`] takes.
    pub fn pattern(self) -> String {
        let position = match self {
            Self::Devices => ID_PATTERN
                .strip_prefix('^')
                .and_then(|p| p.strip_suffix('$'))
                .expect("ID_PATTERN is anchored")
                .to_owned(),
            Self::Outbox | Self::History | Self::Rollouts => {
                format!("[0-9]{{1,{MAX_ROW_ID_DIGITS}}}")
            }
        };
        format!("^{}:{position}$", self.tag())
    }

    /// This list's longest cursor.
    pub fn max_len(self) -> usize {
        self.tag().len()
            + 1
            + match self {
                Self::Devices => MAX_ID_LEN,
                Self::Outbox | Self::History | Self::Rollouts => MAX_ROW_ID_DIGITS,
            }
    }
}

/// A page request, checked: `limit` in 1..=1000 and the cursor's position.
#[derive(Debug)]
pub struct PageRequest {
    /// How many items at most.
    pub limit: i64,
    /// The position after which the page starts.
    pub after: Option<String>,
}

impl PageRequest {
    /// Checks `limit` and decodes `cursor` of a `kind` list.
    pub fn new(
        limit: Option<i64>,
        cursor: Option<&str>,
        kind: CursorKind,
    ) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "limit must be between 1 and {MAX_LIMIT}, got {limit}"
            )));
        }
        let after = cursor.map(|c| decode(c, kind)).transpose()?;
        Ok(Self { limit, after })
    }

    /// The position of a newest-first list's cursor (outbox rows,
    /// history, rollouts): the id the page starts below.
    pub fn before_id(&self) -> Result<Option<i64>, ApiError> {
        self.after
            .as_deref()
            .map(|a| a.parse().map_err(|_| invalid_cursor()))
            .transpose()
    }

    /// How many rows to fetch: one more than the page, to know whether
    /// another page follows.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }

    /// The page of `rows` (fetched with [`Self::fetch`]), with the cursor
    /// after its last item when more rows follow.
    pub fn page<T>(
        &self,
        mut rows: Vec<T>,
        kind: CursorKind,
        position: impl Fn(&T) -> String,
    ) -> Page<T> {
        let more = rows.len() as i64 > self.limit;
        rows.truncate(self.limit as usize);
        let next_cursor = more
            .then(|| rows.last().map(|last| encode(&position(last), kind)))
            .flatten();
        Page {
            items: rows,
            next_cursor,
        }
    }
}

fn encode(position: &str, kind: CursorKind) -> String {
    format!("{}:{position}", kind.tag())
}

fn decode(cursor: &str, kind: CursorKind) -> Result<String, ApiError> {
    cursor
        .strip_prefix(kind.tag())
        .and_then(|c| c.strip_prefix(':'))
        .filter(|position| kind.holds(position))
        .map(str::to_owned)
        .ok_or_else(invalid_cursor)
}

fn invalid_cursor() -> ApiError {
    ApiError::bad_request("the cursor is not one this list gave out")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_within_their_list_only() {
        let cursor = encode("pump-7", CursorKind::Devices);
        assert_eq!(decode(&cursor, CursorKind::Devices).unwrap(), "pump-7");
        assert!(decode(&cursor, CursorKind::Outbox).is_err());
        assert!(decode("!!", CursorKind::Devices).is_err());
        assert_eq!(cursor, "d:pump-7");
    }

    #[test]
    fn positions_a_list_never_gives_out_are_refused() {
        for (cursor, kind) in [
            ("d:\0", CursorKind::Devices),
            ("d:", CursorKind::Devices),
            ("d:a/b", CursorKind::Devices),
            ("o:x", CursorKind::Outbox),
            ("o:-1", CursorKind::Outbox),
            ("o:9999999999999999999", CursorKind::Outbox),
            ("ZDoA", CursorKind::Devices),
        ] {
            assert!(decode(cursor, kind).is_err(), "{cursor}");
        }
        let outbox = encode("42", CursorKind::Outbox);
        assert_eq!(decode(&outbox, CursorKind::Outbox).unwrap(), "42");
    }

    /// Each list's [`CursorKind::pattern`] and [`CursorKind::max_len`]
    /// match exactly the cursors it takes, over strings of the characters
    /// that matter.
    #[test]
    fn the_patterns_state_the_cursors() {
        use proptest::prelude::*;
        use proptest::test_runner::TestRunner;
        let chars =
            proptest::sample::select(vec!['d', 'o', ':', '0', '9', 'a', '-', '/', '\0', ' ']);
        let cursors = proptest::collection::vec(chars, 0..24)
            .prop_map(|chars| chars.into_iter().collect::<String>());
        for kind in [
            CursorKind::Devices,
            CursorKind::Outbox,
            CursorKind::History,
            CursorKind::Rollouts,
        ] {
            let pattern = regex::Regex::new(&kind.pattern()).unwrap();
            TestRunner::default()
                .run(&cursors, |cursor| {
                    prop_assert_eq!(
                        pattern.is_match(&cursor),
                        decode(&cursor, kind).is_ok(),
                        "{:?}",
                        cursor
                    );
                    Ok(())
                })
                .unwrap();
        }
        let longest = encode(&"z".repeat(MAX_ID_LEN), CursorKind::Devices);
        assert_eq!(longest.len(), CursorKind::Devices.max_len());
        assert!(decode(&longest, CursorKind::Devices).is_ok());
        let longest = encode(&"9".repeat(MAX_ROW_ID_DIGITS), CursorKind::Outbox);
        assert_eq!(longest.len(), CursorKind::Outbox.max_len());
        assert!(decode(&longest, CursorKind::Outbox).is_ok());
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(
            PageRequest::new(None, None, CursorKind::Outbox)
                .unwrap()
                .limit,
            DEFAULT_LIMIT
        );
        assert!(PageRequest::new(Some(0), None, CursorKind::Outbox).is_err());
        assert!(PageRequest::new(Some(MAX_LIMIT + 1), None, CursorKind::Outbox).is_err());
    }

    #[test]
    fn a_full_page_has_a_cursor_and_the_last_page_none() {
        let request = PageRequest::new(Some(2), None, CursorKind::Devices).unwrap();
        let page = request.page(vec!["a", "b", "c"], CursorKind::Devices, |s| s.to_string());
        assert_eq!(page.items, ["a", "b"]);
        assert_eq!(
            decode(&page.next_cursor.unwrap(), CursorKind::Devices).unwrap(),
            "b"
        );
        let last = request.page(vec!["c"], CursorKind::Devices, |s| s.to_string());
        assert!(last.next_cursor.is_none());
    }
}
