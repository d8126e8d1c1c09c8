//! The list of pages in tests/pages.json answers as listed. The same list
//! drives the HTML and accessibility checks of tools/pagecheck.

use serde::Deserialize;

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

#[derive(Deserialize)]
struct PageList {
    pages: Vec<Page>,
}

#[derive(Deserialize)]
struct Page {
    name: String,
    #[serde(default)]
    path: String,
    status: u16,
    #[serde(default)]
    form: Option<serde_json::Value>,
    #[serde(default)]
    staff: bool,
    #[serde(default)]
    steps: Option<serde_json::Value>,
}

fn page_list() -> Vec<Page> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pages.json"))
        .expect("tests/pages.json");
    serde_json::from_str::<PageList>(&text)
        .expect("valid page list")
        .pages
}

async fn every_listed_page_answers_as_listed(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let pages = page_list();
    assert!(pages.len() >= 4);
    for page in pages
        .iter()
        .filter(|p| p.form.is_none() && !p.staff && p.steps.is_none())
    {
        let response = app.get(&page.path).await;
        assert_eq!(response.status().as_u16(), page.status, "{}", page.name);
        assert_eq!(
            response.headers()["content-type"],
            "text/html; charset=utf-8",
            "{}",
            page.name
        );
        let html = response.text().await.unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"), "{}", page.name);
        // Citizens' pages name the Contact Center; staff pages do not.
        if !page.path.starts_with("/staff") {
            assert!(html.contains("1500 159"), "{}: contact channels", page.name);
        }
        // The service's name never breaks at its hyphen on a narrow phone
        // (a non-breaking hyphen in the text the page shows).
        let body = &html[html.find("<body").expect("a body")..];
        assert!(
            !body.contains("e-Meterai"),
            "{}: breakable e-Meterai",
            page.name
        );
    }
}

on_both_backends!(every_listed_page_answers_as_listed);

/// Every help article (each `/help/...` path the portal routes) is linked
/// from the help centre, in both languages: a citizen coming from the
/// start page finds each of them.
async fn the_help_centre_links_every_article(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let routes =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/routes/mod.rs")).unwrap();
    let articles: Vec<&str> = routes
        .match_indices("page(\"/help/")
        .map(|(at, _)| {
            let path = &routes[at + 6..];
            &path[..path.find('"').unwrap()]
        })
        .collect();
    assert!(articles.len() >= 3, "{articles:?}");
    for lang in ["", "?lang=en"] {
        let (status, html) = app.get_html(&format!("/help{lang}")).await;
        assert_eq!(status, 200);
        for article in &articles {
            assert!(
                html.contains(&format!("href=\"{article}\"")),
                "/help{lang} does not link {article}"
            );
        }
    }
}

on_both_backends!(the_help_centre_links_every_article);
