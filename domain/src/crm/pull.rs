//! A pull: people changed since the connection's cursor, oldest change first, a page at a
//! time, each page applied in one transaction and the cursor saved after it (a run cut
//! short resumes there). Catches whatever webhooks Twenty never retried.

use chrono::{DateTime, Utc};
use entity::crm_connection;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use super::apply::{Context, apply};
use super::runs::Counts;
use super::twenty::{Account, read_person};
use crate::http::HttpError;

/// Pages walked ahead of the one being written.
const AHEAD: usize = 2;
/// Pages one run reads at most (300,000 people); the next run goes on from the cursor.
const MAX_PAGES: usize = 5_000;
/// The cursor is saved this far behind the newest change seen: a change committed late
/// with an earlier `updatedAt` is still read (reading one twice changes nothing).
const OVERLAP: chrono::Duration = chrono::Duration::seconds(60);

pub(crate) enum PullError {
    Crm(HttpError),
    Store(String),
}

/// Pulls into `counts`, calling `progress` after each page.
pub(crate) async fn pull(
    db: &DatabaseConnection,
    ctx: &Context,
    account: std::sync::Arc<Account>,
    cursor: Option<DateTime<Utc>>,
    counts: &mut Counts,
    progress: &mut super::runs::Progress<'_>,
) -> Result<(), PullError> {
    let (tx, mut pages) = tokio::sync::mpsc::channel(AHEAD);
    let walker = tokio::spawn({
        let account = account.clone();
        async move {
            let mut after: Option<String> = None;
            for _ in 0..MAX_PAGES {
                let page = account.people_since(cursor, after.as_deref()).await;
                let next = match &page {
                    Ok(p) => p.next.clone(),
                    Err(_) => None,
                };
                if tx.send(page).await.is_err() {
                    return;
                }
                match next {
                    // A server repeating its cursor would page forever.
                    Some(n) if Some(&n) != after.as_ref() => after = Some(n),
                    _ => return,
                }
            }
        }
    });
    let mut newest = cursor;
    let result = loop {
        let Some(page) = pages.recv().await else {
            break Ok(());
        };
        let page = match page {
            Ok(p) => p,
            Err(e) => break Err(PullError::Crm(e)),
        };
        let people: Vec<_> = page
            .people
            .iter()
            .filter_map(|r| read_person(r, &ctx.mapping, ctx.region))
            .collect();
        counts.skipped += (page.people.len() - people.len()) as i32;
        let page_newest = people.iter().filter_map(|p| p.updated_at).max();
        match apply(db, ctx, people).await {
            Ok(c) => counts.absorb(c),
            Err(e) => break Err(PullError::Store(e.to_string())),
        }
        if let Some(at) = page_newest
            && newest.is_none_or(|n| at > n)
        {
            newest = Some(at);
            // Never ahead of now: a clock skewed into the future would hide later changes.
            let saved = (at - OVERLAP).min(Utc::now());
            if let Err(e) = crm_connection::Entity::update_many()
                .col_expr(crm_connection::Column::PullCursor, Expr::value(Some(saved)))
                .filter(crm_connection::Column::TenantId.eq(ctx.tenant))
                .exec(db)
                .await
            {
                break Err(PullError::Store(e.to_string()));
            }
        }
        progress.tick(counts).await;
    };
    walker.abort();
    result
}
