use crate::i18n::Lang;

/// Everything that can be wrong with a field, with its text in both
/// languages. The match is exhaustive, so a new problem cannot ship without
/// its Indonesian and English wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    NameEmpty,
    NameTooLong,
    NameCharacters,
    NikEmpty,
    NikNotDigits,
    NikLength,
    NikProvince,
    NikDate,
    NikSerial,
    NikBirthMismatch,
    BirthDateEmpty,
    BirthDateFormat,
    BirthDateFuture,
    BirthDateTooEarly,
    EmailEmpty,
    EmailTooLong,
    EmailFormat,
    PhoneEmpty,
    PhoneFormat,
    PasswordEmpty,
    PasswordTooShort,
    PasswordTooLong,
    PasswordCommon,
    PasswordPersonal,
    PasswordBlank,
    PasswordName,
    PasswordConfirmEmpty,
    PasswordMismatch,
    NpwpFormat,
    NpwpCheck,
    PhotoMissing,
    PhotoTooLarge,
    PhotoType,
    PhotoUnreadable,
    PhotoTooSmall,
    PhotoTooManyPixels,
    PhotoHeic,
    TermsRequired,
    SelfieMissing,
    StatementEmpty,
    StatementTooLong,
}

impl Problem {
    pub fn text(self, lang: Lang) -> &'static str {
        let (id, en) = self.texts();
        match lang {
            Lang::Id => id,
            Lang::En => en,
        }
    }

    fn texts(self) -> (&'static str, &'static str) {
        use Problem::*;
        match self {
            NameEmpty => ("Masukkan nama lengkap Anda", "Enter your full name"),
            NameTooLong => (
                "Nama lengkap paling panjang 100 karakter",
                "Full name must be 100 characters or fewer",
            ),
            NameCharacters => (
                "Nama lengkap hanya boleh berisi huruf, spasi, titik, koma, tanda hubung, dan apostrof",
                "Full name must only include letters, spaces, full stops, commas, hyphens and apostrophes",
            ),
            NikEmpty => ("Masukkan NIK Anda", "Enter your NIK"),
            NikNotDigits => (
                "NIK hanya boleh berisi angka",
                "NIK must only include numbers",
            ),
            NikLength => ("NIK harus 16 digit", "NIK must be 16 digits"),
            NikProvince => (
                "NIK tidak valid. Periksa kembali dua angka pertama NIK pada KTP Anda",
                "This NIK is not valid. Check the first two digits of the NIK on your KTP",
            ),
            NikDate => (
                "NIK tidak valid. Periksa kembali angka ke-7 sampai ke-12 NIK pada KTP Anda",
                "This NIK is not valid. Check digits 7 to 12 of the NIK on your KTP",
            ),
            NikSerial => (
                "Empat digit terakhir NIK tidak boleh 0000",
                "The last 4 digits of the NIK cannot be 0000",
            ),
            NikBirthMismatch => (
                "Tanggal lahir tidak sesuai dengan NIK. Periksa kembali KTP Anda",
                "The date of birth does not match the NIK. Check your KTP",
            ),
            BirthDateEmpty => ("Masukkan tanggal lahir Anda", "Enter your date of birth"),
            BirthDateFormat => (
                "Tulis tanggal lahir seperti pada KTP, misalnya 17-08-1990",
                "Date of birth must be a real date, written as on the KTP, for example 17-08-1990",
            ),
            BirthDateFuture => (
                "Tanggal lahir tidak boleh hari ini atau setelahnya. Periksa kembali tahunnya",
                "The date of birth cannot be today or later. Check the year",
            ),
            BirthDateTooEarly => (
                "Tanggal lahir harus setelah tahun 1900",
                "Date of birth must be after 1900",
            ),
            EmailEmpty => ("Masukkan alamat email Anda", "Enter your email address"),
            EmailTooLong => (
                "Alamat email paling panjang 254 karakter",
                "Email address must be 254 characters or fewer",
            ),
            EmailFormat => (
                "Masukkan alamat email dengan format yang benar, seperti nama@contoh.co.id",
                "Enter an email address in the correct format, like name@example.com",
            ),
            PhoneEmpty => ("Masukkan nomor ponsel Anda", "Enter your mobile number"),
            PhoneFormat => (
                "Masukkan nomor ponsel Indonesia, seperti 0812 3456 7890 atau +62 812 3456 7890",
                "Enter an Indonesian mobile number, like 0812 3456 7890 or +62 812 3456 7890",
            ),
            PasswordEmpty => ("Masukkan kata sandi", "Enter a password"),
            PasswordTooShort => (
                "Kata sandi paling sedikit 8 karakter",
                "Password must be 8 characters or more",
            ),
            PasswordTooLong => (
                "Kata sandi terlalu panjang: paling banyak 72 karakter biasa (huruf tanpa aksen, angka, tanda baca). Huruf beraksen, aksara non-Latin, dan emoji dihitung sebagai 2 sampai 4 karakter",
                "The password is too long: at most 72 plain characters (letters without accents, digits, punctuation). Accented letters, non-Latin scripts and emoji count as 2 to 4 characters each",
            ),
            PasswordCommon => (
                "Kata sandi ini terlalu umum dan mudah ditebak. Pilih kata sandi lain",
                "This password is too common and easy to guess. Choose another one",
            ),
            PasswordPersonal => (
                "Kata sandi tidak boleh sama dengan email atau NIK Anda",
                "Password must not be your email address or NIK",
            ),
            PasswordBlank => (
                "Kata sandi tidak boleh hanya berisi spasi",
                "Password must not be only spaces",
            ),
            PasswordName => (
                "Kata sandi tidak boleh sama dengan nama Anda. Nama mudah ditebak oleh orang yang mengenal Anda",
                "Password must not be your name. People who know you could guess it",
            ),
            PasswordConfirmEmpty => ("Ketik ulang kata sandi Anda", "Re-type your password"),
            PasswordMismatch => (
                "Kata sandi yang Anda ketik ulang berbeda. Ketik kedua kata sandi sekali lagi",
                "The two passwords you typed are different. Type both again",
            ),
            NpwpFormat => (
                "NPWP harus 15 digit (format lama) atau 16 digit",
                "NPWP must be 15 digits (old format) or 16 digits",
            ),
            NpwpCheck => (
                "Nomor NPWP ini tidak valid. Periksa kembali angka-angkanya pada kartu NPWP Anda",
                "This NPWP number is not valid. Check its digits on your NPWP card",
            ),
            PhotoMissing => ("Pilih foto KTP Anda", "Select a photo of your KTP"),
            SelfieMissing => (
                "Pilih foto diri Anda sambil memegang KTP",
                "Select a photo of you holding your KTP",
            ),
            StatementEmpty => (
                "Ceritakan singkat apa yang terjadi",
                "Tell us briefly what happened",
            ),
            StatementTooLong => (
                "Cerita terlalu panjang: paling banyak 2000 karakter",
                "The statement is too long: at most 2000 characters",
            ),
            PhotoTooLarge => (
                "Berkas foto KTP lebih dari 15 MB. Foto dari kamera ponsel biasa dapat langsung dipakai dan kami perkecil sendiri. Foto ulang KTP dengan pengaturan kamera biasa (bukan mode resolusi tertinggi atau RAW), atau kirim tangkapan layar foto tersebut",
                "The KTP photo file is larger than 15 MB. A photo from a normal phone camera works as it is, and we make it smaller ourselves. Take the photo again with the normal camera setting (not the highest resolution or RAW), or send a screenshot of the photo",
            ),
            PhotoType => (
                "Foto KTP harus berupa berkas JPG, PNG, WebP, atau BMP",
                "The KTP photo must be a JPG, PNG, WebP or BMP file",
            ),
            PhotoUnreadable => (
                "Berkas ini tidak dapat dibuka sebagai gambar. Mungkin berkas rusak atau belum selesai terunduh. Pilih foto lain atau foto ulang KTP Anda",
                "This file cannot be opened as an image. It may be damaged or not fully downloaded. Choose another photo or take the photo again",
            ),
            PhotoTooSmall => (
                "Foto KTP terlalu kecil untuk dibaca. Foto ulang KTP dari dekat sehingga KTP memenuhi layar",
                "The KTP photo is too small to read. Take the photo again from close by, so that the KTP fills the screen",
            ),
            PhotoTooManyPixels => (
                "Gambar ini terlalu besar untuk diproses (lebih dari 50 megapiksel). Foto ulang KTP dengan kamera ponsel biasa",
                "This image is too large to process (more than 50 megapixels). Take the photo again with the phone's normal camera",
            ),
            PhotoHeic => (
                "Foto dalam format HEIC (iPhone) belum dapat kami terima. Di iPhone, buka Pengaturan > Kamera > Format, pilih Paling Kompatibel, lalu foto ulang KTP. Atau kirim tangkapan layar foto tersebut",
                "Photos in HEIC format (iPhone) cannot be accepted yet. On the iPhone, open Settings > Camera > Formats, choose Most Compatible, then take the photo again. Or send a screenshot of the photo",
            ),
            TermsRequired => (
                "Centang kotak persetujuan syarat dan ketentuan agar pendaftaran dapat dilanjutkan",
                "Select the box to agree to the terms and conditions",
            ),
        }
    }
}
