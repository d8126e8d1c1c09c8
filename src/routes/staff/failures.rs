//! `GET /staff/failures`: the failure log, filtered and paged.
use super::*;

// ---------------------------------------------------------------- the list

#[derive(Deserialize, Default, Clone)]
pub struct ListQuery {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    before: String,
}

fn is_reference(q: &str) -> bool {
    let b = q.as_bytes();
    b.len() == 13
        && b[3] == b'-'
        && b[8] == b'-'
        && q.chars()
            .enumerate()
            .all(|(i, c)| i == 3 || i == 8 || c.is_ascii_alphanumeric())
}

/// Turns the query into a filter, or the text of what is wrong with it.
pub(super) fn parse_filter(
    query: &ListQuery,
    state: &AppState,
    lang: Lang,
) -> Result<FailureFilter, &'static str> {
    let t = lang.text();
    let mut filter = FailureFilter::default();
    if !query.reason.is_empty() {
        if !reason::ALL.contains(&query.reason.as_str()) {
            return Err(t.staff_bad_reason);
        }
        filter.reason = Some(query.reason.clone());
    }
    let date = |text: &str| staff_date(text).ok_or(t.staff_bad_date);
    if !query.from.trim().is_empty() {
        filter.from = Some(wib_day_start(date(&query.from)?));
    }
    if !query.to.trim().is_empty() {
        filter.to = Some(wib_day_start(date(&query.to)? + Duration::days(1)));
    }
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && from >= to
    {
        return Err(t.staff_reversed_range);
    }
    let q = query.q.trim();
    if !q.is_empty() {
        let digits = crate::domain::strip_nik(q);
        if is_reference(q) {
            filter.reference = Some(q.to_ascii_uppercase());
        } else if q.contains('@') {
            filter.email = Some(q.to_lowercase());
        } else if digits.len() == 16 && digits.chars().all(|c| c.is_ascii_digit()) {
            filter.nik_hash = Some(state.failures.nik_hash(&digits));
        } else {
            return Err(t.staff_bad_search);
        }
    }
    Ok(filter)
}

pub struct ListRow {
    pub reference: String,
    pub when: String,
    pub reason: &'static str,
    pub fields: String,
    pub email: String,
    pub nik: String,
    pub ip: String,
    pub resolved: bool,
}

fn list_row(row: &FailureRow, lang: Lang) -> ListRow {
    ListRow {
        reference: row.reference.clone(),
        when: wib(row.occurred_at),
        reason: reason_label(&row.reason, lang),
        fields: crate::i18n::field_labels(&row.fields, lang),
        email: row.email.as_deref().map(email_mask).unwrap_or_default(),
        nik: row.nik_masked.clone().unwrap_or_default(),
        ip: row.client_ip.clone().unwrap_or_default(),
        resolved: row.resolved_at.is_some(),
    }
}

#[derive(Template)]
#[template(path = "staff/failures.html")]
struct FailuresPage {
    ctx: PageCtx,
    csrf: String,
    staff: StaffUser,
    query: ListQuery,
    reasons: Vec<(&'static str, &'static str)>,
    rows: Vec<ListRow>,
    error: Option<&'static str>,
    next: Option<String>,
    csv: String,
    first_page: bool,
}

/// The query string of the current filters (without the cursor).
pub(super) fn filter_query(q: &ListQuery) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in [
        ("reason", &q.reason),
        ("from", &q.from),
        ("to", &q.to),
        ("q", &q.q),
    ] {
        if !value.trim().is_empty() {
            query.append_pair(key, value.trim());
        }
    }
    query.finish()
}

pub async fn failures(
    Page(req, ctx, session, state): Page,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    let staff = staff_or_login!(req, state);
    let query = query.into_inner();
    let lang = ctx.lang;
    let reasons = reason::ALL
        .iter()
        .map(|r| (*r, reason_label(r, lang)))
        .collect();
    let filter = parse_filter(&query, &state, lang);
    let cursor = Cursor::decode(&query.before);
    let (rows, error) = match filter {
        Ok(filter) => {
            let cursor_for_query = cursor.clone();
            let rows = crate::services::staff::failures::page(
                &state.services(),
                filter,
                cursor_for_query,
                PAGE_SIZE,
            )
            .await?;
            (rows, None)
        }
        Err(message) => (Vec::new(), Some(message)),
    };
    let next = (rows.len() as i64 == PAGE_SIZE).then(|| {
        let last = rows.last().expect("a full page");
        Cursor {
            at: last.occurred_at,
            reference: last.reference.clone(),
        }
        .encode()
    });
    let filters = filter_query(&query);
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = FailuresPage {
        csrf: crate::session::csrf_token(&session),
        staff,
        rows: rows.iter().map(|r| list_row(r, lang)).collect(),
        reasons,
        error,
        next: next.map(|n| {
            if filters.is_empty() {
                format!("/staff/failures?before={n}")
            } else {
                format!("/staff/failures?{filters}&before={n}")
            }
        }),
        csv: if filters.is_empty() {
            "/staff/failures.csv".to_string()
        } else {
            format!("/staff/failures.csv?{filters}")
        },
        first_page: cursor.is_none(),
        query,
        ctx,
    };
    page.ctx.render(status, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_recognised() {
        assert!(is_reference("DFT-7K3Q-9XWZ"));
        assert!(is_reference("dft-7k3q-9xwz"));
        assert!(!is_reference("budi@example.com"));
        assert!(!is_reference("3201011708900003"));
    }
}
