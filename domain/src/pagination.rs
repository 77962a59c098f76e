//! Cursor pagination shared by every list. Rows are ordered newest first by their
//! time-ordered (v7) UUID, so a cursor stays valid while rows are inserted.

use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};
use uuid::Uuid;

use crate::db::by_position::{self, ByPosition};
use crate::error::{DomainError, DomainResult};

pub const DEFAULT_PAGE_SIZE: u64 = 20;
pub const MAX_PAGE_SIZE: u64 = 100;

/// Validated `first` / `after` arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub first: u64,
    pub after: Option<Uuid>,
}

impl PageRequest {
    pub fn new(first: Option<i32>, after: Option<&str>) -> DomainResult<Self> {
        let first = match first {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if n >= 1 && (n as u64) <= MAX_PAGE_SIZE => n as u64,
            Some(_) => {
                return Err(DomainError::invalid(
                    "first",
                    format!("must be between 1 and {MAX_PAGE_SIZE}"),
                ));
            }
        };
        let after = after.map(decode_cursor).transpose()?;
        Ok(PageRequest { first, after })
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            first: DEFAULT_PAGE_SIZE,
            after: None,
        }
    }
}

/// One page of rows plus whether more follow.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next_page: bool,
}

impl<T> Page<T> {
    /// Builds a page from a query that fetched `first + 1` rows.
    pub fn from_overfetch(mut rows: Vec<T>, first: u64) -> Self {
        let has_next_page = rows.len() as u64 > first;
        rows.truncate(first as usize);
        Page {
            items: rows,
            has_next_page,
        }
    }
}

/// Runs `query` as one page: rows after the cursor, newest first by `id`, one extra row
/// fetched to tell whether another page follows.
pub async fn fetch<E: EntityTrait>(
    db: &DatabaseConnection,
    query: Select<E>,
    id: E::Column,
    page: PageRequest,
) -> DomainResult<Page<E::Model>> {
    let rows = newest_first(query, id, page).all(db).await?;
    Ok(Page::from_overfetch(rows, page.first))
}

/// [`fetch`] for an entity decoded by position (the same statement, a cheaper read).
pub async fn fetch_by_position<E: ByPosition>(
    db: &DatabaseConnection,
    query: Select<E>,
    id: E::Column,
    page: PageRequest,
) -> DomainResult<Page<E::Model>> {
    let rows = by_position::all(db, newest_first(query, id, page)).await?;
    Ok(Page::from_overfetch(rows, page.first))
}

fn newest_first<E: EntityTrait>(
    mut query: Select<E>,
    id: E::Column,
    page: PageRequest,
) -> Select<E> {
    if let Some(after) = page.after {
        query = query.filter(id.lt(after));
    }
    query.order_by_desc(id).limit(page.first + 1)
}

/// Like [`fetch`], oldest first (for lists with an order of their own, such as a
/// campaign's items in file order).
pub async fn fetch_ascending<E: EntityTrait>(
    db: &DatabaseConnection,
    mut query: Select<E>,
    id: E::Column,
    page: PageRequest,
) -> DomainResult<Page<E::Model>> {
    if let Some(after) = page.after {
        query = query.filter(id.gt(after));
    }
    let rows = query.order_by_asc(id).limit(page.first + 1).all(db).await?;
    Ok(Page::from_overfetch(rows, page.first))
}

pub fn encode_cursor(id: Uuid) -> String {
    id.simple().to_string()
}

pub fn decode_cursor(cursor: &str) -> DomainResult<Uuid> {
    Uuid::try_parse(cursor.trim())
        .map_err(|_| DomainError::invalid("after", "is not a cursor from this API"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_first() {
        assert_eq!(PageRequest::new(None, None).unwrap().first, 20);
        assert!(PageRequest::new(Some(0), None).is_err());
        assert!(PageRequest::new(Some(101), None).is_err());
        assert!(PageRequest::new(Some(-5), None).is_err());
        assert!(PageRequest::new(Some(10), Some("garbage")).is_err());
    }

    #[test]
    fn cursor_round_trip() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(id)).unwrap(), id);
    }

    #[test]
    fn overfetch() {
        let p = Page::from_overfetch(vec![1, 2, 3], 2);
        assert_eq!(p.items, vec![1, 2]);
        assert!(p.has_next_page);
        assert!(!Page::from_overfetch(vec![1], 2).has_next_page);
    }
}
