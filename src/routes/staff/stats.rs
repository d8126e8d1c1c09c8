//! `GET /staff/stats`: failed registrations per day, and sign-in and link problems.
use super::*;

// ---------------------------------------------------------------- stats

pub struct Segment {
    pub y: i64,
    pub height: i64,
    pub color: &'static str,
    pub label: String,
}

pub struct Bar {
    pub x: i64,
    pub day: String,
    pub segments: Vec<Segment>,
}

#[derive(Template)]
#[template(path = "staff/stats.html")]
struct StatsPage {
    ctx: PageCtx,
    csrf: String,
    staff: StaffUser,
    from: String,
    to: String,
    error: Option<&'static str>,
    bars: Vec<Bar>,
    bar_width: i64,
    legend: Vec<(&'static str, &'static str)>,
    /// Table: one row per day, one column per reason in `legend`.
    table: Vec<(String, Vec<i64>, i64)>,
    /// The value axis: (y, label) of each tick.
    ticks: Vec<(i64, i64)>,
    /// Sign-in and link problems, apart from failed registrations.
    access_columns: Vec<&'static str>,
    access_table: Vec<(String, Vec<i64>, i64)>,
}

const COLORS: [&str; 15] = [
    "#1d70b8", "#d4351c", "#00703c", "#f47738", "#4c2c92", "#b58840", "#912b88", "#28a197",
    "#505a5f", "#5694ca", "#85994b", "#f499be", "#003078", "#6f72af", "#942514",
];
const CHART_HEIGHT: i64 = 200;
const CHART_WIDTH: i64 = 600;

#[derive(Deserialize)]
pub struct StatsQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

pub async fn stats(
    Page(req, ctx, session, state): Page,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, AppError> {
    let staff = staff_or_login!(req, state);
    let t = ctx.t;
    let lang = ctx.lang;
    let today = state.clock.today_in_indonesia();
    let parse = |text: &str, default: NaiveDate| {
        if text.trim().is_empty() {
            Ok(default)
        } else {
            staff_date(text).ok_or(t.staff_bad_date)
        }
    };
    let range = parse(&query.from, today - Duration::days(6))
        .and_then(|from| parse(&query.to, today).map(|to| (from, to)))
        .and_then(|(from, to)| {
            if to < from {
                Err(t.staff_reversed_range)
            } else if (to - from).num_days() > 92 {
                Err(t.staff_bad_range)
            } else {
                Ok((from, to))
            }
        });
    let (from, to, error) = match range {
        Ok((from, to)) => (from, to, None),
        Err(e) => (today - Duration::days(6), today, Some(e)),
    };
    let counts = crate::services::staff::failures::counts_by_day(
        &state.services(),
        wib_day_start(from),
        wib_day_start(to + Duration::days(1)),
    )
    .await?;

    // day -> reason -> n, every day of the range present.
    let mut by_day: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    let mut day = from;
    while day <= to {
        by_day.insert(day.format("%Y-%m-%d").to_string(), BTreeMap::new());
        day += Duration::days(1);
    }
    for c in counts {
        by_day.entry(c.day).or_default().insert(c.reason, c.n);
    }
    // Sign-in and link problems are counted apart (not failed sign-ups).
    let access_columns: Vec<&'static str> = reason::ACCESS
        .iter()
        .copied()
        .filter(|r| by_day.values().any(|m| m.contains_key(*r)))
        .collect();
    let access_table = by_day
        .iter()
        .map(|(day, reasons)| {
            let counts: Vec<i64> = access_columns
                .iter()
                .map(|r| reasons.get(*r).copied().unwrap_or(0))
                .collect();
            let total = counts.iter().sum();
            (day.clone(), counts, total)
        })
        .collect();
    for reasons in by_day.values_mut() {
        reasons.retain(|r, _| !reason::ACCESS.contains(&r.as_str()));
    }
    let legend: Vec<(&'static str, &'static str)> = reason::ALL
        .iter()
        .enumerate()
        .filter(|(_, r)| by_day.values().any(|m| m.contains_key(**r)))
        .map(|(i, r)| (COLORS[i % COLORS.len()], *r))
        .collect();
    let max_total = by_day
        .values()
        .map(|m| m.values().sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1);
    // A round top for the value axis (1, 2 or 5 times a power of ten).
    let top = {
        let mut step = 1;
        loop {
            if let Some(top) = [step, 2 * step, 5 * step]
                .into_iter()
                .find(|t| *t >= max_total)
            {
                break top;
            }
            step *= 10;
        }
    };
    let max_total = top;
    let mut values = vec![0, top / 2, top];
    values.dedup();
    let ticks = values
        .into_iter()
        .map(|v| (CHART_HEIGHT - v * CHART_HEIGHT / top, v))
        .collect::<Vec<_>>();
    let bar_width = (CHART_WIDTH / by_day.len().max(1) as i64).clamp(4, 80);
    let bars = by_day
        .iter()
        .enumerate()
        .map(|(i, (day, reasons))| {
            let mut y = CHART_HEIGHT;
            let segments = legend
                .iter()
                .filter_map(|(color, r)| {
                    let n = *reasons.get(*r)?;
                    let height = (n * CHART_HEIGHT / max_total).max(1);
                    y -= height;
                    Some(Segment {
                        y,
                        height,
                        color,
                        label: format!("{day}: {} {n}", reason_label(r, lang)),
                    })
                })
                .collect();
            Bar {
                x: i as i64 * bar_width,
                day: day[5..].to_string(),
                segments,
            }
        })
        .collect();
    let table = by_day
        .iter()
        .map(|(day, reasons)| {
            let counts: Vec<i64> = legend
                .iter()
                .map(|(_, r)| reasons.get(*r).copied().unwrap_or(0))
                .collect();
            (day.clone(), counts, reasons.values().sum())
        })
        .collect();
    let page = StatsPage {
        csrf: crate::session::csrf_token(&session),
        staff,
        from: from.format("%Y-%m-%d").to_string(),
        to: to.format("%Y-%m-%d").to_string(),
        error,
        bars,
        bar_width,
        legend: legend
            .iter()
            .map(|(c, r)| (*c, reason_label(r, lang)))
            .collect(),
        table,
        ticks,
        access_columns: access_columns
            .iter()
            .map(|r| reason_label(r, lang))
            .collect(),
        access_table,
        ctx,
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    page.ctx.render(status, &page)
}
