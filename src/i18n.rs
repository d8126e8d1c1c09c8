//! Translations: a small typed catalogue. Every text is a field of `Text`,
//! and there is one `Text` value per language, so a text missing in either
//! language is a compile error rather than a blank on a citizen's screen.
//! Bahasa Indonesia is the default; `?lang=en` switches to English and is
//! remembered in the `lang` cookie.

use actix_web::HttpRequest;

pub const LANG_COOKIE: &str = "lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Id,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Id => "id",
            Lang::En => "en",
        }
    }

    pub fn from_code(code: &str) -> Option<Lang> {
        match code.trim().to_ascii_lowercase().as_str() {
            "id" | "in" => Some(Lang::Id),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn text(self) -> &'static Text {
        match self {
            Lang::Id => &ID,
            Lang::En => &EN,
        }
    }

    /// The other language, for the switch link in the header.
    pub fn other(self) -> Lang {
        match self {
            Lang::Id => Lang::En,
            Lang::En => Lang::Id,
        }
    }

    /// `?lang=` in the query wins, then the cookie, then Indonesian.
    /// Returns the language and whether the query asked for it explicitly
    /// (so the response remembers it in a cookie).
    pub fn from_request(req: &HttpRequest) -> (Lang, bool) {
        if let Some(lang) = query_lang(req.query_string()) {
            return (lang, true);
        }
        let from_cookie = req
            .cookie(LANG_COOKIE)
            .and_then(|c| Lang::from_code(c.value()));
        (from_cookie.unwrap_or_default(), false)
    }
}

fn query_lang(query: &str) -> Option<Lang> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "lang")
        .and_then(|(_, v)| Lang::from_code(v))
}

/// Every text of the portal's pages, in one language.
pub struct Text {
    // Layout
    pub site_name: &'static str,
    pub skip_to_content: &'static str,
    pub switch_language: &'static str,
    pub nav_label: &'static str,
    pub nav_home: &'static str,
    pub nav_register: &'static str,
    pub nav_help: &'static str,
    pub contact_heading: &'static str,
    pub contact_intro: &'static str,
    pub contact_phone: &'static str,
    pub contact_whatsapp: &'static str,
    pub contact_email: &'static str,
    pub footer_note: &'static str,

    // Start page
    pub home_title: &'static str,
    pub home_lead: &'static str,
    pub home_needs_heading: &'static str,
    pub home_need_nik: &'static str,
    pub home_need_ktp: &'static str,
    pub home_need_email: &'static str,
    pub home_need_phone: &'static str,
    pub home_time: &'static str,
    pub home_start: &'static str,
    pub home_help_heading: &'static str,
    pub home_help_text: &'static str,
    pub home_help_link: &'static str,

    // Error pages
    pub error_reference: &'static str,
    pub error_reference_hint: &'static str,
    pub error_what_next: &'static str,
    pub error_back_home: &'static str,
    pub error_connection_help: &'static str,
    pub error_400_title: &'static str,
    pub error_400_body: &'static str,
    pub error_403_title: &'static str,
    pub error_403_body: &'static str,
    pub error_404_title: &'static str,
    pub error_404_body: &'static str,
    pub error_405_title: &'static str,
    pub error_405_body: &'static str,
    pub error_413_title: &'static str,
    pub error_413_body: &'static str,
    pub error_429_title: &'static str,
    pub error_429_body: &'static str,
    pub error_500_title: &'static str,
    pub error_500_body: &'static str,
    pub error_503_title: &'static str,
    pub error_503_body: &'static str,
    pub error_other_title: &'static str,
    pub error_other_body: &'static str,
}

pub static ID: Text = Text {
    site_name: "Pendaftaran e-Meterai",
    skip_to_content: "Langsung ke isi utama",
    switch_language: "English",
    nav_label: "Menu utama",
    nav_home: "Beranda",
    nav_register: "Daftar",
    nav_help: "Bantuan",
    contact_heading: "Hubungi Contact Center",
    contact_intro: "Jika Anda masih mengalami kendala, hubungi kami:",
    contact_phone: "Telepon",
    contact_whatsapp: "WhatsApp",
    contact_email: "Email",
    footer_note: "Meterai elektronik sesuai PP 86/2021.",

    home_title: "Daftar akun e-Meterai",
    home_lead: "Untuk membeli dan membubuhkan e-Meterai, Anda perlu membuat akun terlebih dahulu.",
    home_needs_heading: "Yang perlu Anda siapkan",
    home_need_nik: "NIK Anda (16 digit, tertera pada KTP)",
    home_need_ktp: "Foto KTP dalam format JPG, PNG atau BMP, paling besar 1 MB",
    home_need_email: "Alamat email yang dapat Anda buka sekarang, untuk menerima tautan verifikasi",
    home_need_phone: "Nomor ponsel Indonesia yang aktif",
    home_time: "Pendaftaran biasanya selesai dalam 5 menit.",
    home_start: "Mulai pendaftaran",
    home_help_heading: "Mengalami kendala?",
    home_help_text: "Jika email Anda dinyatakan sudah digunakan atau situs tidak merespons, baca panduan kami.",
    home_help_link: "Panduan jika pendaftaran gagal",

    error_reference: "Kode referensi",
    error_reference_hint: "Sebutkan kode ini saat menghubungi Contact Center agar kami dapat menemukan masalah Anda.",
    error_what_next: "Yang dapat Anda lakukan",
    error_back_home: "Kembali ke beranda",
    error_connection_help: "Panduan jika situs tidak merespons",
    error_400_title: "Permintaan tidak dapat diproses",
    error_400_body: "Data yang dikirim tidak lengkap atau rusak. Muat ulang halaman, lalu coba lagi.",
    error_403_title: "Akses ditolak",
    error_403_body: "Anda tidak memiliki akses ke halaman ini, atau halaman sudah kedaluwarsa. Muat ulang halaman, lalu coba lagi.",
    error_404_title: "Halaman tidak ditemukan",
    error_404_body: "Periksa kembali alamat yang Anda ketik. Jika Anda membuka tautan, tautan tersebut mungkin sudah tidak berlaku.",
    error_405_title: "Permintaan tidak didukung",
    error_405_body: "Halaman ini tidak dapat dibuka dengan cara tersebut. Buka halaman dari beranda.",
    error_413_title: "Data yang dikirim terlalu besar",
    error_413_body: "Berkas yang Anda unggah terlalu besar. Foto KTP paling besar 1 MB. Perkecil foto, lalu coba lagi.",
    error_429_title: "Terlalu banyak percobaan",
    error_429_body: "Anda mencoba terlalu sering dalam waktu singkat. Tunggu beberapa menit, lalu coba lagi.",
    error_500_title: "Terjadi kesalahan pada sistem kami",
    error_500_body: "Ini bukan kesalahan Anda. Data yang belum selesai dikirim tidak tersimpan. Coba lagi dalam beberapa menit.",
    error_503_title: "Layanan sedang sibuk",
    error_503_body: "Layanan sedang tidak dapat melayani permintaan Anda. Data Anda belum tersimpan. Coba lagi dalam beberapa menit.",
    error_other_title: "Permintaan tidak dapat diproses",
    error_other_body: "Muat ulang halaman, lalu coba lagi.",
};

pub static EN: Text = Text {
    site_name: "e-Meterai registration",
    skip_to_content: "Skip to main content",
    switch_language: "Bahasa Indonesia",
    nav_label: "Main menu",
    nav_home: "Home",
    nav_register: "Register",
    nav_help: "Help",
    contact_heading: "Contact Center",
    contact_intro: "If you are still having problems, contact us:",
    contact_phone: "Telephone",
    contact_whatsapp: "WhatsApp",
    contact_email: "Email",
    footer_note: "Electronic stamp duty under Government Regulation 86/2021.",

    home_title: "Create an e-Meterai account",
    home_lead: "To buy and affix e-Meterai you first need an account.",
    home_needs_heading: "What you need",
    home_need_nik: "Your NIK (16 digits, printed on your KTP)",
    home_need_ktp: "A photo of your KTP as JPG, PNG or BMP, at most 1 MB",
    home_need_email: "An email address you can open now, to receive the verification link",
    home_need_phone: "An active Indonesian mobile number",
    home_time: "Registration usually takes 5 minutes.",
    home_start: "Start registration",
    home_help_heading: "Having problems?",
    home_help_text: "If you are told your email is already used, or the site does not respond, read our guidance.",
    home_help_link: "What to do when registration fails",

    error_reference: "Reference code",
    error_reference_hint: "Give this code when you contact the Contact Center so we can find your problem.",
    error_what_next: "What you can do",
    error_back_home: "Go to the home page",
    error_connection_help: "What to do when the site does not respond",
    error_400_title: "Your request could not be processed",
    error_400_body: "What was sent was incomplete or damaged. Reload the page and try again.",
    error_403_title: "Access denied",
    error_403_body: "You do not have access to this page, or the page has expired. Reload the page and try again.",
    error_404_title: "Page not found",
    error_404_body: "Check the address you typed. If you followed a link, it may no longer be valid.",
    error_405_title: "Request not supported",
    error_405_body: "This page cannot be opened that way. Open it from the home page.",
    error_413_title: "What you sent is too large",
    error_413_body: "The file you uploaded is too large. The KTP photo must be 1 MB or smaller. Make the photo smaller and try again.",
    error_429_title: "Too many attempts",
    error_429_body: "You tried too often in a short time. Wait a few minutes and try again.",
    error_500_title: "Something went wrong on our side",
    error_500_body: "This is not your fault. Anything you had not finished sending was not saved. Try again in a few minutes.",
    error_503_title: "The service is busy",
    error_503_body: "The service cannot handle your request right now. Your answers have not been saved. Try again in a few minutes.",
    error_other_title: "Your request could not be processed",
    error_other_body: "Reload the page and try again.",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_language_is_read_from_any_position() {
        assert_eq!(query_lang("lang=en"), Some(Lang::En));
        assert_eq!(query_lang("a=1&lang=id"), Some(Lang::Id));
        assert_eq!(query_lang("lang=fr"), None);
        assert_eq!(query_lang(""), None);
    }
}
