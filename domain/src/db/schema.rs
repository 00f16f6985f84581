// Diesel table definitions, kept in step with `migrations/` (checked by the migration test in
// domain/tests/migrations.rs, which compares them with the live catalog).

diesel::table! {
    partners (id) {
        id -> Uuid,
        mpn_id -> Text,
        legal_name -> Text,
        address_lines -> Array<Text>,
        city -> Text,
        region -> Nullable<Text>,
        postal_code -> Text,
        country -> Text,
        contact_first_name -> Text,
        contact_last_name -> Text,
        contact_email -> Text,
        contact_phone -> Text,
        contact_email_verified_at -> Nullable<Timestamptz>,
        tenant_id -> Uuid,
        tenant_created -> Bool,
        vetting_status -> Text,
        vetting_sub_status -> Text,
        fields_under_verification -> Array<Text>,
        vetting_reason -> Nullable<Text>,
        network_member_since -> Timestamptz,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        partner_id -> Uuid,
        subject -> Nullable<Text>,
        email -> Text,
        display_name -> Nullable<Text>,
        roles -> Array<Text>,
        status -> Text,
        invited_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    operators (id) {
        id -> Uuid,
        subject -> Text,
        email -> Text,
        name -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    agreement_acceptances (id) {
        id -> Uuid,
        partner_id -> Uuid,
        agreement -> Text,
        version -> Text,
        accepted_by -> Uuid,
        accepted_at -> Timestamptz,
    }
}

diesel::table! {
    email_verifications (id) {
        id -> Uuid,
        partner_id -> Uuid,
        email -> Text,
        token_hash -> Text,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        superseded_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    emails (id) {
        id -> Uuid,
        partner_id -> Nullable<Uuid>,
        template -> Text,
        recipient -> Text,
        subject -> Text,
        body_text -> Nullable<Text>,
        body_html -> Nullable<Text>,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        sent_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    outbox (id) {
        id -> Int8,
        queue -> Text,
        payload -> Jsonb,
        run_at -> Timestamptz,
        created_at -> Timestamptz,
        dispatched_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    service_requests (id) {
        id -> Uuid,
        partner_id -> Uuid,
        kind -> Text,
        title -> Text,
        description -> Text,
        severity -> Text,
        status -> Text,
        product -> Nullable<Text>,
        subscription_id -> Nullable<Uuid>,
        benefit_id -> Nullable<Uuid>,
        created_by -> Uuid,
        resolution -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        closed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    service_request_notes (id) {
        id -> Uuid,
        service_request_id -> Uuid,
        author_kind -> Text,
        author_id -> Uuid,
        author_name -> Text,
        body -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Uuid,
        partner_id -> Nullable<Uuid>,
        actor_kind -> Text,
        actor_id -> Text,
        action -> Text,
        target_type -> Text,
        target_id -> Text,
        details -> Jsonb,
        request_id -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(users -> partners (partner_id));
diesel::joinable!(service_request_notes -> service_requests (service_request_id));

diesel::allow_tables_to_appear_in_same_query!(
    partners,
    users,
    operators,
    agreement_acceptances,
    email_verifications,
    emails,
    outbox,
    service_requests,
    service_request_notes,
    audit_log,
);
