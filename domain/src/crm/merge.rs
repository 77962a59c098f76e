//! The per-field three-way merge. `base` holds the values both sides last agreed on: a
//! field that differs from it changed on that side since. Our own pushes come back from
//! the CRM equal to `base` (or to our value), so they are never applied again.

use chrono::{DateTime, Utc};

use super::fields::{Field, Overrides, Side, Values};

/// What to do with one CRM record against its customer.
#[derive(Debug, Default, PartialEq)]
pub struct Merge {
    /// Fields whose CRM value is taken here.
    pub take: Vec<Field>,
    /// Fields whose value here must be pushed.
    pub push: Vec<Field>,
    /// Fields both sides changed differently (settled by an override or by time).
    pub conflicts: Vec<Field>,
    /// The new agreed values (the pushed fields keep their old base until pushed).
    pub base: Values,
}

/// Merges `remote` (read from the CRM, changed at `remote_at`) into `local` (changed at
/// `local_at`) over `base` (`None`: never synced, so every difference is a conflict).
pub fn merge(
    fields: &[Field],
    local: &Values,
    remote: &Values,
    base: Option<&Values>,
    local_at: DateTime<Utc>,
    remote_at: Option<DateTime<Utc>>,
    overrides: &Overrides,
) -> Merge {
    let mut out = Merge {
        base: base.cloned().unwrap_or_default(),
        ..Merge::default()
    };
    for &f in fields {
        let l = local.get(f);
        let r = remote.get(f);
        if !f.two_way() {
            // Computed here: the CRM's copy never wins.
            if l != base.map_or(r, |b| b.get(f)) {
                out.push.push(f);
            }
            continue;
        }
        if l == r {
            out.base.set(f, l.map(str::to_owned));
            continue;
        }
        let b = base.map(|b| b.get(f));
        let remote_changed = b.is_none_or(|b| b != r);
        let local_changed = b.is_none_or(|b| b != l);
        let take_remote = match (remote_changed, local_changed) {
            (true, false) => true,
            (false, _) => false,
            (true, true) => {
                // Never synced and one side empty: fill the gap rather than call it a conflict.
                if base.is_none() && (l.is_none() || r.is_none()) {
                    r.is_some()
                } else {
                    out.conflicts.push(f);
                    match overrides.winner(f) {
                        Some(Side::Crm) => true,
                        Some(Side::Switchboard) => false,
                        // Last write wins; a tie goes to the CRM (its user acted on it).
                        None => remote_at.is_none_or(|at| at >= local_at),
                    }
                }
            }
        };
        // A customer always has a phone: an emptied one in the CRM is put back.
        if take_remote && !(f == Field::Phone && r.is_none()) {
            out.take.push(f);
            out.base.set(f, r.map(str::to_owned));
        } else {
            out.push.push(f);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn vals(pairs: &[(Field, &str)]) -> Values {
        let mut v = Values::default();
        for (f, s) in pairs {
            v.set(*f, Some((*s).to_owned()));
        }
        v
    }

    const F: &[Field] = &[Field::Name, Field::Email, Field::Phone, Field::LeadScore];

    #[test]
    fn a_change_on_one_side_goes_to_the_other() {
        let now = Utc::now();
        let base = vals(&[(Field::Name, "Ada"), (Field::Email, "a@x")]);
        let remote = vals(&[(Field::Name, "Ada L"), (Field::Email, "a@x")]);
        let local = vals(&[(Field::Name, "Ada"), (Field::Email, "new@x")]);
        let m = merge(
            F,
            &local,
            &remote,
            Some(&base),
            now,
            Some(now),
            &Overrides::default(),
        );
        assert_eq!(m.take, vec![Field::Name]);
        assert_eq!(m.push, vec![Field::Email]);
        assert!(m.conflicts.is_empty());
        assert_eq!(m.base.get(Field::Name), Some("Ada L"));
        assert_eq!(m.base.get(Field::Email), Some("a@x"));
    }

    #[test]
    fn our_own_push_coming_back_changes_nothing() {
        let now = Utc::now();
        let v = vals(&[(Field::Name, "Ada"), (Field::LeadScore, "70")]);
        let m = merge(F, &v, &v, Some(&v), now, Some(now), &Overrides::default());
        assert_eq!(
            m,
            Merge {
                base: v.clone(),
                ..Merge::default()
            }
        );
    }

    #[test]
    fn conflicts_follow_the_override_then_the_clock() {
        let t0 = Utc::now();
        let base = vals(&[(Field::Name, "Ada")]);
        let remote = vals(&[(Field::Name, "Remote")]);
        let local = vals(&[(Field::Name, "Local")]);
        let later_remote = merge(
            F,
            &local,
            &remote,
            Some(&base),
            t0,
            Some(t0 + Duration::seconds(5)),
            &Overrides::default(),
        );
        assert_eq!(later_remote.take, vec![Field::Name]);
        assert_eq!(later_remote.conflicts, vec![Field::Name]);
        let later_local = merge(
            F,
            &local,
            &remote,
            Some(&base),
            t0 + Duration::seconds(5),
            Some(t0),
            &Overrides::default(),
        );
        assert_eq!(later_local.push, vec![Field::Name]);
        let mut o = Overrides::default();
        o.0.insert(Field::Name, Side::Switchboard);
        let pinned = merge(
            F,
            &local,
            &remote,
            Some(&base),
            t0,
            Some(t0 + Duration::hours(1)),
            &o,
        );
        assert_eq!(pinned.push, vec![Field::Name]);
        o.0.insert(Field::Name, Side::Crm);
        let crm = merge(
            F,
            &local,
            &remote,
            Some(&base),
            t0 + Duration::hours(1),
            Some(t0),
            &o,
        );
        assert_eq!(crm.take, vec![Field::Name]);
    }

    #[test]
    fn an_emptied_phone_is_put_back_and_computed_fields_only_go_out() {
        let now = Utc::now();
        let base = vals(&[(Field::Phone, "+14155550123"), (Field::LeadScore, "10")]);
        let remote = vals(&[(Field::LeadScore, "99")]);
        let local = vals(&[(Field::Phone, "+14155550123"), (Field::LeadScore, "10")]);
        let m = merge(
            F,
            &local,
            &remote,
            Some(&base),
            now,
            Some(now),
            &Overrides::default(),
        );
        assert_eq!(m.push, vec![Field::Phone]);
        assert!(m.take.is_empty());
    }

    #[test]
    fn a_first_match_fills_gaps_without_conflicts() {
        let now = Utc::now();
        let remote = vals(&[(Field::Name, "Ada"), (Field::Phone, "+1")]);
        let local = vals(&[(Field::Email, "a@x"), (Field::Phone, "+1")]);
        let m = merge(
            F,
            &local,
            &remote,
            None,
            now,
            Some(now),
            &Overrides::default(),
        );
        assert_eq!(m.take, vec![Field::Name]);
        assert_eq!(m.push, vec![Field::Email]);
        assert!(m.conflicts.is_empty());
    }
}
