// @generated automatically by Diesel CLI.

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

diesel::table! {
    azure_credit_grants (id) {
        id -> Uuid,
        entitlement_id -> Uuid,
        month_index -> Int4,
        period_start -> Timestamptz,
        period_end -> Timestamptz,
        amount_minor -> Int8,
        granted_at -> Timestamptz,
    }
}

diesel::table! {
    benefit_assignments (id) {
        id -> Uuid,
        entitlement_id -> Uuid,
        user_id -> Uuid,
        assigned_at -> Timestamptz,
        assigned_by -> Uuid,
        unassigned_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    competencies (code) {
        code -> Text,
        name -> Text,
        solution_area -> Text,
        cloud -> Bool,
        vs_bonus -> Bool,
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
    entitlements (id) {
        id -> Uuid,
        partner_id -> Uuid,
        subscription_id -> Uuid,
        offer_id -> Text,
        benefit_code -> Text,
        category -> Text,
        delivery -> Text,
        product -> Text,
        unit -> Text,
        quantity -> Nullable<Int4>,
        used -> Int4,
        term -> Int4,
        status -> Text,
        activation -> Nullable<Text>,
        activation_requested_at -> Nullable<Timestamptz>,
        activation_due_at -> Nullable<Timestamptz>,
        activated_at -> Nullable<Timestamptz>,
        failure_reason -> Nullable<Text>,
        access_id -> Nullable<Text>,
        contract_id -> Nullable<Text>,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    gateway_customers (partner_id) {
        partner_id -> Uuid,
        customer_id -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    gateway_events (id) {
        id -> Text,
        #[sql_name = "type"]
        type_ -> Text,
        payload -> Jsonb,
        outcome -> Text,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    invoice_counters (year) {
        year -> Int4,
        last_number -> Int4,
    }
}

diesel::table! {
    invoices (id) {
        id -> Uuid,
        partner_id -> Uuid,
        order_id -> Uuid,
        number -> Text,
        year -> Int4,
        seq -> Int4,
        issued_at -> Timestamptz,
        period_start -> Timestamptz,
        period_end -> Timestamptz,
        bill_to -> Jsonb,
        lines -> Jsonb,
        currency -> Text,
        subtotal_minor -> Int8,
        discount_minor -> Int8,
        tax_rate_bp -> Int4,
        tax_minor -> Int8,
        total_minor -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    marketing_contacts (partner_id) {
        partner_id -> Uuid,
        user_id -> Uuid,
        email -> Text,
        phone -> Text,
        language -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    offer_benefits (offer_id, code) {
        offer_id -> Text,
        code -> Text,
        category -> Text,
        product -> Text,
        delivery -> Text,
        quantity -> Nullable<Int4>,
        unit -> Text,
        bonus_per_competency -> Int4,
        unlimited_if_cloud -> Bool,
        requires_competency -> Nullable<Text>,
        sort -> Int4,
    }
}

diesel::table! {
    offers (id) {
        id -> Text,
        name -> Text,
        description -> Text,
        kind -> Text,
        level -> Nullable<Text>,
        price_minor -> Int8,
        currency -> Text,
        annual -> Bool,
        terms_version -> Text,
        sort -> Int4,
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
    ops_sessions (id_hash) {
        id_hash -> Bytea,
        operator_id -> Uuid,
        csrf_token -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    orders (id) {
        id -> Uuid,
        partner_id -> Uuid,
        number -> Text,
        kind -> Text,
        offer_id -> Text,
        subscription_id -> Nullable<Uuid>,
        term -> Int4,
        status -> Text,
        payment_kind -> Text,
        payment_method_id -> Nullable<Uuid>,
        bank_transfer -> Nullable<Jsonb>,
        currency -> Text,
        price_minor -> Int8,
        discount_minor -> Int8,
        tax_rate_bp -> Int4,
        tax_minor -> Int8,
        total_minor -> Int8,
        terms_version -> Nullable<Text>,
        competencies -> Array<Text>,
        idempotency_key -> Text,
        request_hash -> Text,
        placed_by -> Text,
        placed_at -> Timestamptz,
        expires_at -> Nullable<Timestamptz>,
        paid_at -> Nullable<Timestamptz>,
        gateway_charge_id -> Nullable<Text>,
        failure_code -> Nullable<Text>,
        failure_message -> Nullable<Text>,
        refunded_minor -> Int8,
        refunded_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
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
    payment_methods (id) {
        id -> Uuid,
        partner_id -> Uuid,
        gateway_token -> Text,
        brand -> Text,
        last4 -> Text,
        exp_month -> Int4,
        exp_year -> Int4,
        holder_name -> Text,
        created_by -> Uuid,
        created_at -> Timestamptz,
        removed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    product_keys (id) {
        id -> Uuid,
        entitlement_id -> Uuid,
        nonce -> Bytea,
        ciphertext -> Bytea,
        first_revealed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        key_id -> Text,
    }
}

diesel::table! {
    qualifications (id) {
        id -> Uuid,
        partner_id -> Uuid,
        competency -> Text,
        level -> Text,
        qualified_on -> Date,
        recorded_by -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    queue_pauses (queue) {
        queue -> Text,
        paused_at -> Timestamptz,
        paused_by -> Text,
    }
}

diesel::table! {
    refunds (order_id) {
        order_id -> Uuid,
        partner_id -> Uuid,
        status -> Text,
        amount_minor -> Int8,
        currency -> Text,
        reference -> Nullable<Text>,
        failure -> Nullable<Text>,
        attempts -> Int4,
        requested_at -> Timestamptz,
        settled_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    sandbox_calls (id) {
        id -> Int8,
        operation -> Text,
        idempotency_key -> Text,
        started_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    sandbox_cards (token) {
        token -> Text,
        brand -> Text,
        last4 -> Text,
        behaviour -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    sandbox_charges (id) {
        id -> Text,
        idempotency_key -> Text,
        token -> Nullable<Text>,
        amount_minor -> Int8,
        currency -> Text,
        refunded_minor -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    sandbox_refunds (id) {
        id -> Text,
        idempotency_key -> Text,
        charge_id -> Text,
        amount_minor -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    scheduled_actions (id) {
        id -> Uuid,
        partner_id -> Uuid,
        kind -> Text,
        subject_id -> Uuid,
        term -> Int4,
        tag -> Text,
        due_at -> Timestamptz,
        status -> Text,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        outcome -> Nullable<Text>,
        dispatched_at -> Nullable<Timestamptz>,
        done_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
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
        intent -> Text,
        refund_eligibility_shown -> Nullable<Jsonb>,
        decision -> Nullable<Text>,
    }
}

diesel::table! {
    subscriptions (id) {
        id -> Uuid,
        partner_id -> Uuid,
        offer_id -> Text,
        status -> Text,
        auto_renew -> Bool,
        term -> Int4,
        competencies -> Array<Text>,
        payment_method_id -> Nullable<Uuid>,
        activated_at -> Nullable<Timestamptz>,
        term_started_at -> Nullable<Timestamptz>,
        anniversary_at -> Nullable<Timestamptz>,
        upgrade_discount_used -> Bool,
        upgraded_at -> Nullable<Timestamptz>,
        key_revealed_at -> Nullable<Timestamptz>,
        benefit_activated_at -> Nullable<Timestamptz>,
        renewal_failures -> Int4,
        last_renewal_error -> Nullable<Text>,
        ended_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        ends_at_anniversary -> Bool,
        benefit_use -> Nullable<Text>,
    }
}

diesel::table! {
    test_clocks (partner_id) {
        partner_id -> Uuid,
        offset_seconds -> Int8,
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

diesel::joinable!(agreement_acceptances -> partners (partner_id));
diesel::joinable!(agreement_acceptances -> users (accepted_by));
diesel::joinable!(audit_log -> partners (partner_id));
diesel::joinable!(azure_credit_grants -> entitlements (entitlement_id));
diesel::joinable!(benefit_assignments -> entitlements (entitlement_id));
diesel::joinable!(email_verifications -> partners (partner_id));
diesel::joinable!(emails -> partners (partner_id));
diesel::joinable!(entitlements -> offers (offer_id));
diesel::joinable!(entitlements -> partners (partner_id));
diesel::joinable!(entitlements -> subscriptions (subscription_id));
diesel::joinable!(gateway_customers -> partners (partner_id));
diesel::joinable!(invoices -> orders (order_id));
diesel::joinable!(invoices -> partners (partner_id));
diesel::joinable!(marketing_contacts -> partners (partner_id));
diesel::joinable!(marketing_contacts -> users (user_id));
diesel::joinable!(offer_benefits -> competencies (requires_competency));
diesel::joinable!(offer_benefits -> offers (offer_id));
diesel::joinable!(ops_sessions -> operators (operator_id));
diesel::joinable!(orders -> offers (offer_id));
diesel::joinable!(orders -> partners (partner_id));
diesel::joinable!(orders -> payment_methods (payment_method_id));
diesel::joinable!(orders -> subscriptions (subscription_id));
diesel::joinable!(payment_methods -> partners (partner_id));
diesel::joinable!(payment_methods -> users (created_by));
diesel::joinable!(product_keys -> entitlements (entitlement_id));
diesel::joinable!(qualifications -> competencies (competency));
diesel::joinable!(qualifications -> operators (recorded_by));
diesel::joinable!(qualifications -> partners (partner_id));
diesel::joinable!(refunds -> orders (order_id));
diesel::joinable!(refunds -> partners (partner_id));
diesel::joinable!(sandbox_refunds -> sandbox_charges (charge_id));
diesel::joinable!(scheduled_actions -> partners (partner_id));
diesel::joinable!(service_request_notes -> service_requests (service_request_id));
diesel::joinable!(service_requests -> entitlements (benefit_id));
diesel::joinable!(service_requests -> partners (partner_id));
diesel::joinable!(service_requests -> subscriptions (subscription_id));
diesel::joinable!(service_requests -> users (created_by));
diesel::joinable!(subscriptions -> offers (offer_id));
diesel::joinable!(subscriptions -> partners (partner_id));
diesel::joinable!(subscriptions -> payment_methods (payment_method_id));
diesel::joinable!(test_clocks -> partners (partner_id));
diesel::joinable!(users -> partners (partner_id));

diesel::allow_tables_to_appear_in_same_query!(
    agreement_acceptances,
    audit_log,
    azure_credit_grants,
    benefit_assignments,
    competencies,
    email_verifications,
    emails,
    entitlements,
    gateway_customers,
    gateway_events,
    invoice_counters,
    invoices,
    marketing_contacts,
    offer_benefits,
    offers,
    operators,
    ops_sessions,
    orders,
    outbox,
    partners,
    payment_methods,
    product_keys,
    qualifications,
    queue_pauses,
    refunds,
    sandbox_calls,
    sandbox_cards,
    sandbox_charges,
    sandbox_refunds,
    scheduled_actions,
    service_request_notes,
    service_requests,
    subscriptions,
    test_clocks,
    users,
);
