// Diesel table definitions, shared by both backends (only types both
// support: Text, BigInt, Integer, Binary, Timestamp).

diesel::table! {
    ktp_uploads (id) {
        id -> Text,
        file_name -> Text,
        content_type -> Text,
        size_bytes -> BigInt,
        data -> Binary,
        created_at -> Timestamp,
        data_key_id -> Nullable<Text>,
    }
}

diesel::table! {
    data_keys (id) {
        id -> Text,
        kek_version -> Integer,
        wrapped -> Binary,
        created_at -> Timestamp,
    }
}

diesel::table! {
    accounts (id) {
        id -> Text,
        email -> Text,
        nik -> Text,
        full_name -> Text,
        birth_date -> Text,
        phone -> Text,
        npwp -> Nullable<Text>,
        password_hash -> Text,
        ktp_upload_id -> Text,
        lang -> Text,
        verified_at -> Nullable<Timestamp>,
        session_epoch -> BigInt,
        created_at -> Timestamp,
        nik_hash -> Nullable<Text>,
        sealed -> Nullable<Binary>,
        data_key_id -> Nullable<Text>,
        suspended_at -> Nullable<Timestamp>,
        suspended_case -> Nullable<Text>,
        deletion_due_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    account_tokens (token_hash) {
        token_hash -> Text,
        account_id -> Text,
        purpose -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        superseded_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    registration_submissions (submission_id) {
        submission_id -> Text,
        account_id -> Nullable<Text>,
        email -> Text,
        created_at -> Timestamp,
        registration_id -> Nullable<Text>,
    }
}

diesel::table! {
    status_notices (id) {
        id -> Text,
        text_id -> Text,
        text_en -> Text,
        started_at -> Timestamp,
        started_by -> Text,
        ended_at -> Nullable<Timestamp>,
        ended_by -> Nullable<Text>,
    }
}

diesel::table! {
    mail_outbox (id) {
        id -> Text,
        account_id -> Nullable<Text>,
        kind -> Text,
        to_address -> Text,
        subject -> Text,
        text_body -> Text,
        html_body -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        locked_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        registration_id -> Nullable<Text>,
        sealed -> Nullable<Binary>,
        data_key_id -> Nullable<Text>,
        not_me_hash -> Nullable<Text>,
        not_me_used_at -> Nullable<Timestamp>,
        delivery -> Nullable<Text>,
        delivery_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    mail_events (id) {
        id -> Text,
        mail_id -> Text,
        kind -> Text,
        permanent -> Integer,
        occurred_at -> Timestamp,
        received_at -> Timestamp,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    undeliverable_addresses (address) {
        address -> Text,
        kind -> Text,
        mail_id -> Text,
        since -> Timestamp,
    }
}

diesel::table! {
    registrations (id) {
        id -> Text,
        email -> Text,
        nik -> Text,
        nik_hash -> Nullable<Text>,
        full_name -> Text,
        birth_date -> Text,
        phone -> Text,
        npwp -> Nullable<Text>,
        ktp_upload_id -> Text,
        lang -> Text,
        legacy_password_hash -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        last_sent_at -> Nullable<Timestamp>,
        link_opened_at -> Nullable<Timestamp>,
        completed_at -> Nullable<Timestamp>,
        account_id -> Nullable<Text>,
        sealed -> Nullable<Binary>,
        data_key_id -> Nullable<Text>,
    }
}

diesel::table! {
    registration_tokens (token_hash) {
        token_hash -> Text,
        registration_id -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    staff_recovery_codes (staff_id, code_hash) {
        staff_id -> Text,
        code_hash -> Text,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(registration_tokens -> registrations (registration_id));

diesel::joinable!(accounts -> ktp_uploads (ktp_upload_id));
diesel::joinable!(account_tokens -> accounts (account_id));

diesel::table! {
    failures (reference) {
        reference -> Text,
        occurred_at -> Timestamp,
        reason -> Text,
        fields -> Text,
        email -> Nullable<Text>,
        nik_masked -> Nullable<Text>,
        nik_hash -> Nullable<Text>,
        client_ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        path -> Text,
        resolved_at -> Nullable<Timestamp>,
        resolved_by -> Nullable<Text>,
        email_shape -> Nullable<Text>,
        email_sealed -> Nullable<Binary>,
        data_key_id -> Nullable<Text>,
    }
}

diesel::table! {
    staff (id) {
        id -> Text,
        email -> Text,
        password_hash -> Text,
        disabled_at -> Nullable<Timestamp>,
        failed_logins -> Integer,
        locked_until -> Nullable<Timestamp>,
        session_epoch -> BigInt,
        created_at -> Timestamp,
        totp_secret -> Nullable<Text>,
        totp_last_step -> Nullable<BigInt>,
    }
}

diesel::table! {
    staff_audit (id) {
        id -> Text,
        at -> Timestamp,
        staff_email -> Text,
        action -> Text,
        target -> Text,
    }
}

diesel::table! {
    failure_notes (id) {
        id -> Text,
        reference -> Text,
        staff_email -> Text,
        note -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    rate_counters (key) {
        key -> Text,
        window_end -> Timestamp,
        count -> Integer,
        not_before -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sessions (id_hash) {
        id_hash -> Text,
        kind -> Text,
        subject_id -> Text,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        device -> Nullable<Text>,
        network -> Nullable<Text>,
    }
}

diesel::table! {
    account_deletions (account_id) {
        account_id -> Text,
        requested_at -> Timestamp,
        deleted_at -> Timestamp,
    }
}

diesel::table! {
    nik_cases (id) {
        id -> Text,
        reference -> Text,
        nik -> Text,
        open_nik -> Nullable<Text>,
        status -> Text,
        sealed -> Binary,
        data_key_id -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        due_at -> Timestamp,
        assigned_to -> Nullable<Text>,
        closed_at -> Nullable<Timestamp>,
        holder_account_id -> Nullable<Text>,
    }
}

diesel::table! {
    nik_case_parties (id) {
        id -> Text,
        case_id -> Text,
        role -> Text,
        token_hash -> Text,
        sealed -> Binary,
        lang -> Text,
        created_at -> Timestamp,
        failure_reference -> Nullable<Text>,
    }
}

diesel::table! {
    nik_case_photos (id) {
        id -> Text,
        case_id -> Text,
        party_id -> Text,
        kind -> Text,
        content_type -> Text,
        size_bytes -> BigInt,
        data -> Binary,
        created_at -> Timestamp,
    }
}

diesel::table! {
    nik_case_events (id) {
        id -> Text,
        case_id -> Text,
        at -> Timestamp,
        actor -> Text,
        kind -> Text,
        party_id -> Nullable<Text>,
        message -> Nullable<Binary>,
    }
}

diesel::table! {
    account_requests (id) {
        id -> Text,
        account_id -> Text,
        kind -> Text,
        status -> Text,
        sealed -> Nullable<Binary>,
        photo -> Nullable<Binary>,
        photo_type -> Nullable<Text>,
        created_at -> Timestamp,
        due_at -> Timestamp,
        decided_at -> Nullable<Timestamp>,
        decided_by -> Nullable<Text>,
        decision -> Nullable<Text>,
    }
}

diesel::table! {
    email_changes (token_hash) {
        token_hash -> Text,
        account_id -> Text,
        sealed -> Binary,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    account_requests,
    email_changes,
    account_deletions,
    nik_cases,
    nik_case_parties,
    nik_case_photos,
    nik_case_events,
    ktp_uploads,
    data_keys,
    accounts,
    account_tokens,
    registration_submissions,
    mail_outbox,
    status_notices,
    failures,
    rate_counters,
    staff,
    staff_recovery_codes,
    staff_audit,
    failure_notes,
    registrations,
    registration_tokens,
    sessions,
    mail_events,
    undeliverable_addresses,
);
