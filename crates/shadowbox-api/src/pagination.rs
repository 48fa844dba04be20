//! Cursor pagination. A list answers `{"items": [...], "next_cursor": ...}`;
//! `next_cursor` is `null` on the last page, otherwise an opaque string to
//! pass back as `cursor` (with the same filters) for the next page. A
//! cursor encodes the position after the page's last item (a device id, an
//! outbox id), so pages neither skip nor repeat items when rows are added.
//! A cursor whose position is not one its list could have given out (say,
//! a device id with a NUL byte) is refused with 400 before any query.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use shadowbox_core::DeviceId;
use utoipa::ToSchema;

use crate::problem::ApiError;

/// Page size when `limit` is absent.
pub const DEFAULT_LIMIT: i64 = 100;
/// Largest accepted `limit`.
pub const MAX_LIMIT: i64 = 1000;

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
}

impl CursorKind {
    fn tag(self) -> &'static str {
        match self {
            Self::Devices => "d",
            Self::Outbox => "o",
            Self::History => "h",
        }
    }

    /// Whether `position` is one this list gives out: a valid device id,
    /// a row id.
    fn holds(self, position: &str) -> bool {
        match self {
            Self::Devices => DeviceId::parse(position).is_ok(),
            Self::Outbox | Self::History => position.parse::<i64>().is_ok(),
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
    /// history): the id the page starts below.
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
    URL_SAFE_NO_PAD.encode(format!("{}:{position}", kind.tag()))
}

fn decode(cursor: &str, kind: CursorKind) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|s| Some(s.strip_prefix(kind.tag())?.strip_prefix(':')?.to_owned()))
        .filter(|position| kind.holds(position))
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
    }

    #[test]
    fn positions_a_list_never_gives_out_are_refused() {
        // "d:\0", "d:", "o:x": a NUL byte, an empty id, not a row id.
        for (cursor, kind) in [
            ("ZDoA", CursorKind::Devices),
            (&encode("", CursorKind::Devices), CursorKind::Devices),
            (&encode("a/b", CursorKind::Devices), CursorKind::Devices),
            (&encode("x", CursorKind::Outbox), CursorKind::Outbox),
        ] {
            assert!(decode(cursor, kind).is_err(), "{cursor}");
        }
        let outbox = encode("42", CursorKind::Outbox);
        assert_eq!(decode(&outbox, CursorKind::Outbox).unwrap(), "42");
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
