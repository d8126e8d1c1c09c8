//! `GET /staff/failures.csv`: the filtered failure log as CSV.
use super::failures::{ListQuery, filter_query, parse_filter};
use super::*;

// ---------------------------------------------------------------- CSV

/// A CSV writer into memory: RFC 4180 quoting where needed (the csv
/// crate), CRLF line ends.
fn csv_writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new())
}

/// A cell a spreadsheet never reads as a formula: a leading = + - @ tab or
/// carriage return gets a '.
fn guarded(value: &str) -> std::borrow::Cow<'_, str> {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{value}"))
    } else {
        std::borrow::Cow::Borrowed(value)
    }
}

/// The records written so far (writing to memory cannot fail).
fn csv_bytes(writer: csv::Writer<Vec<u8>>) -> Bytes {
    Bytes::from(writer.into_inner().unwrap_or_default())
}

const CSV_BATCH: i64 = 1000;

/// `GET /staff/failures.csv`: the current filters as CSV, masked like the
/// list, streamed in batches of 1,000 rows (constant memory at any size).
pub async fn failures_csv(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    let Some(staff) = current_staff(&req, &state).await? else {
        return Ok(HttpResponse::Unauthorized()
            .insert_header((CONTENT_TYPE, "text/plain; charset=utf-8"))
            .body("sign in at /staff/login\n"));
    };
    let query = query.into_inner();
    let filter = parse_filter(&query, &state, Lang::En).map_err(AppError::BadRequest)?;
    audit(&state, &staff, "export_csv", filter_query(&query)).await?;

    let name = format!("failures-{}.csv", state.clock.now().format("%Y%m%d-%H%M%S"));
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, actix_web::Error>>(2);
    let state = state.clone();
    actix_web::rt::spawn(async move {
        let mut header = csv_writer();
        let _ = header.write_record([
            "occurred_at_wib",
            "reference",
            "reason",
            "fields",
            "email",
            "nik",
            "client_ip",
            "user_agent",
            "path",
            "resolved",
        ]);
        if tx.send(Ok(csv_bytes(header))).await.is_err() {
            return;
        }
        let mut cursor: Option<Cursor> = None;
        loop {
            let (filter, after) = (filter.clone(), cursor.clone());
            let batch =
                crate::services::staff::failures::page(&state.services(), filter, after, CSV_BATCH)
                    .await;
            let rows = match batch {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::error!(
                        error = %crate::error::error_chain(&error),
                        "CSV export stopped: database error"
                    );
                    let _ = tx
                        .send(Err(actix_web::error::ErrorServiceUnavailable(
                            "database unavailable",
                        )))
                        .await;
                    return;
                }
            };
            let mut chunk = csv_writer();
            for row in &rows {
                let email = row.email.as_deref().map(email_mask).unwrap_or_default();
                let when = wib(row.occurred_at);
                let cells = [
                    when.as_str(),
                    &row.reference,
                    &row.reason,
                    &row.fields,
                    &email,
                    row.nik_masked.as_deref().unwrap_or(""),
                    row.client_ip.as_deref().unwrap_or(""),
                    row.user_agent.as_deref().unwrap_or(""),
                    &row.path,
                    if row.resolved_at.is_some() {
                        "yes"
                    } else {
                        "no"
                    },
                ];
                let _ = chunk.write_record(cells.iter().map(|c| guarded(c).into_owned()));
            }
            if tx.send(Ok(csv_bytes(chunk))).await.is_err() {
                return; // the download was cancelled
            }
            if (rows.len() as i64) < CSV_BATCH {
                return;
            }
            let last = rows.last().expect("a full batch");
            cursor = Some(Cursor {
                at: last.occurred_at,
                reference: last.reference.clone(),
            });
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/csv; charset=utf-8"))
        .insert_header((
            CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .insert_header((CACHE_CONTROL, "no-store"))
        .streaming(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        let mut writer = csv_writer();
        let cells = ["plain", "a,b", "say \"hi\"", "=HYPERLINK(1)", "-1"];
        writer
            .write_record(cells.iter().map(|c| guarded(c).into_owned()))
            .unwrap();
        assert_eq!(
            &csv_bytes(writer)[..],
            b"plain,\"a,b\",\"say \"\"hi\"\"\",'=HYPERLINK(1),'-1\r\n"
        );
    }
}
