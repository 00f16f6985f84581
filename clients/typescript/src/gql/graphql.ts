/* eslint-disable */
/** Internal type. DO NOT USE DIRECTLY. */
type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
/** Internal type. DO NOT USE DIRECTLY. */
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';
/**
 * Technical benefits and Go-To-Market offers: NOT_ACTIVATED → ACTIVATION_PENDING → ACTIVE,
 * or FAILED (with a reason; activate again to retry).
 */
export type ActivationState =
  /** Asked for; the worker completes it at `expectedCompletionAt`. */
  | 'ACTIVATION_PENDING'
  /** Activated: the benefit can be used (technical benefits carry their Access ID and contract ID). */
  | 'ACTIVE'
  /** The provider refused it; `failureReason` says why. Activate again to retry. */
  | 'FAILED'
  /** Not asked for yet: `activateTechnicalBenefit` or `activateGoToMarketOffer` starts it. */
  | 'NOT_ACTIVATED';

/** A postal address. */
export type AddressInput = {
  /** The city. */
  city: string;
  /** ISO 3166-1 alpha-2, for example `US`. */
  country: string;
  /** One to three street lines. */
  lines: Array<string>;
  /** The postal code. */
  postalCode: string;
  /** The state, province or region. */
  region?: string | null | undefined;
};

/** The contact for paying an order by electronic bank transfer (a purchase or a renewal). */
export type BankTransferInput = {
  /** That contact's work email; the transfer instructions are sent there. */
  contactEmail: string;
  /** Who arranges the transfer at the partner. */
  contactName: string;
  /** E.164, for example +14255550100. */
  contactPhone: string;
};

/** The benefit categories (the tabs of the Benefits page). */
export type BenefitCategory =
  /** Cloud services: Azure credit and users. */
  | 'CLOUD'
  /** Go-To-Market offers. */
  | 'GO_TO_MARKET'
  /** On-premises software: product keys and downloads. */
  | 'SOFTWARE'
  /** Technical support: incidents, Signature Cloud Support, advisory hours. */
  | 'TECHNICAL'
  /** Visual Studio subscriptions (seats). */
  | 'VISUAL_STUDIO';

/** A card's details, for the sandbox gateway only (with Stripe the card is collected by Stripe Elements and its PaymentMethod id is sent instead). */
export type CardInput = {
  /** The card's security code (never stored). */
  cvc: string;
  /** Expiry month, 1 to 12. */
  expMonth: number;
  /** Expiry year, four digits. */
  expYear: number;
  /** The name on the card. */
  holderName: string;
  /** Sent to the gateway to be tokenized; never stored, logged or returned. */
  number: string;
};

/** A person to contact at the partner. */
export type ContactInput = {
  /** A person's work email: role addresses and free-mail domains are refused. */
  email: string;
  /** First name. */
  firstName: string;
  /** Last name. */
  lastName: string;
  /** E.164, for example `+14255550100`. */
  phone: string;
};

/** What enrollment needs: the legal profile, the primary contact and the agreement accepted. */
export type EnrollPartnerInput = {
  /** Must be true: the partner agreement is accepted by the enrolling user. */
  acceptPartnerAgreement: boolean;
  /** The company's legal address. */
  address: AddressInput;
  /** The agreement version the user was shown (must be the current one). */
  agreementVersion: string;
  /** An existing Azure AD tenant; omit to have a new one created. */
  existingTenantId?: unknown;
  /** The company's legal name, as registered. */
  legalName: string;
  /** The primary contact (a work email: verified by email). */
  primaryContact: ContactInput;
};

/** Whether a benefit can still be used. */
export type EntitlementStatus =
  /** Usable. */
  | 'ACTIVE'
  /** The package lapsed or was cancelled. */
  | 'REVOKED';

/** The kinds of offer. */
export type OfferKind =
  /** The annual Action Pack: no competency needed. */
  | 'ACTION_PACK'
  /** A Silver or Gold competency package: needs a qualification at its level. */
  | 'COMPETENCY'
  /** Network membership: free, on enrollment, never renews. */
  | 'MEMBERSHIP';

/** Where an order stands. */
export type OrderStatus =
  /** Cancelled before it was paid. */
  | 'CANCELLED'
  /** A bank transfer that did not arrive in time. */
  | 'EXPIRED'
  /** Paid: the subscription is active for the term. */
  | 'PAID'
  /** The card was refused; `failureCode` says why. */
  | 'PAYMENT_FAILED'
  /** Waiting for a bank transfer (expires after 30 days). */
  | 'PENDING_PAYMENT'
  /** A card charge is under way. */
  | 'PROCESSING'
  /** Paid, then refunded (see `refund`). */
  | 'REFUNDED';

/** How an order is paid: a saved card or a bank transfer (exactly one). */
export type PaymentInput =
  {   /** Electronic bank transfer: the order waits for the funds (30 days at most). */
  bankTransfer: BankTransferInput; paymentMethodId?: never; }
  |  { bankTransfer?: never;   /** A saved card (see `addPaymentMethod`), charged at once. */
  paymentMethodId: string | number; };

/** A purchase of an offer. */
export type PurchaseInput = {
  /** The version of the offer terms the buyer accepted (the offer's `termsVersion`). */
  acceptTermsVersion: string;
  /**
   * Competency packages: the competencies to bind (each qualified at the package's level).
   * Default: every competency the partner is qualified for at that level.
   */
  competencies?: Array<string> | null | undefined;
  /** The same key with the same input returns the first result; with other input, CONFLICT. */
  idempotencyKey: string;
  /** `ACTION_PACK`, `SILVER` or `GOLD`. */
  offerId: string;
  /** How it is paid. */
  payment: PaymentInput;
};

/**
 * PRODUCT.md 2.5: PENDING_PAYMENT → ACTIVE → IN_RENEWAL_WINDOW → LAPSED, plus CANCELLED and
 * ORDER_EXPIRED.
 */
export type SubscriptionStatus =
  /** Active for the current term. */
  | 'ACTIVE'
  /** Cancelled: ended, benefits revoked. */
  | 'CANCELLED'
  /** Past its anniversary date and not renewed yet: renew by AD+30 or it lapses. */
  | 'IN_RENEWAL_WINDOW'
  /** Not renewed in time: ended, benefits revoked. */
  | 'LAPSED'
  /** Its bank transfer never arrived. */
  | 'ORDER_EXPIRED'
  /** Bought by bank transfer: waiting for the funds. */
  | 'PENDING_PAYMENT';

/** Roles a partner user can hold (several at once). A user with none is a plain member. */
export type TenantRole =
  /** Buys, renews and pays; manages benefits and support. */
  | 'ADMIN_AGENT'
  /** Everything, for the partner (the enrolling user is one). */
  | 'GLOBAL_ADMIN'
  /** Manages the partner's program membership, benefits and invoices. */
  | 'MPN_PARTNER_ADMIN'
  /** Manages users and their roles. */
  | 'USER_ADMIN';

/** Where a user stands. */
export type UserStatus =
  /** Signed in at least once. */
  | 'ACTIVE'
  /** Invited; becomes active on first sign-in with the invited email. */
  | 'INVITED'
  /** Removed: no access. */
  | 'REMOVED';

/** An operator's vetting decision. */
export type VettingDecision =
  /** The partner is verified: purchases open. */
  | 'AUTHORIZE'
  /** The partner is not verified (with a reason). */
  | 'REJECT';

/** Where a partner's verification stands. */
export type VettingStatus =
  /** Verified: the partner may buy. */
  | 'AUTHORIZED'
  /** Being verified. */
  | 'PENDING'
  /** Not verified. */
  | 'REJECTED';

/** The step a pending verification is at. */
export type VettingSubStatus =
  /** Checking the company's legal name and address. */
  | 'BUSINESS_VERIFICATION'
  /** Waiting for an operator's decision. */
  | 'DECISION'
  /** Waiting for the primary contact to follow the email link. */
  | 'EMAIL_OWNERSHIP'
  /** Checking that the contact works for the company. */
  | 'EMPLOYMENT_VERIFICATION';

export type BenefitsQueryVariables = Exact<{
  category?: BenefitCategory | null | undefined;
  first?: number | null | undefined;
}>;


export type BenefitsQuery = { benefits: { edges: Array<{ node: { id: string, code: string, product: string, category: BenefitCategory, quantity: number | null, used: number, remaining: number | null, status: EntitlementStatus, expiresAt: string, accessId: string | null, contractId: string | null, activation: { state: ActivationState, expectedCompletionAt: string | null, failureReason: string | null } | null } }> } };

export type ActivateTechnicalBenefitMutationVariables = Exact<{
  benefitId: string | number;
}>;


export type ActivateTechnicalBenefitMutation = { activateTechnicalBenefit: { id: string, activation: { state: ActivationState, expectedCompletionAt: string | null } | null } };

export type PartnerAgreementQueryVariables = Exact<{ [key: string]: never; }>;


export type PartnerAgreementQuery = { partnerAgreement: { name: string, version: string } };

export type MeQueryVariables = Exact<{ [key: string]: never; }>;


export type MeQuery = { me: { identity: { subject: string, email: string | null }, user: { id: string, roles: Array<TenantRole>, status: UserStatus } | null, partner: { id: string, legalName: string } | null, operator: { name: string } | null } };

export type EnrollPartnerMutationVariables = Exact<{
  input: EnrollPartnerInput;
}>;


export type EnrollPartnerMutation = { enrollPartner: { partner: { id: string, mpnId: string, legalName: string, vetting: { status: VettingStatus, subStatus: VettingSubStatus } }, user: { id: string, roles: Array<TenantRole> } } };

export type VerifyPrimaryContactEmailMutationVariables = Exact<{
  token: string;
}>;


export type VerifyPrimaryContactEmailMutation = { verifyPrimaryContactEmail: { vettingStatus: VettingStatus, vettingSubStatus: VettingSubStatus } };

export type DecideVettingMutationVariables = Exact<{
  partnerId: string | number;
  decision: VettingDecision;
  reason?: string | null | undefined;
}>;


export type DecideVettingMutation = { decideVetting: { id: string, vetting: { status: VettingStatus, subStatus: VettingSubStatus } } };

export type AdvanceTestClockToMutationVariables = Exact<{
  partnerId: string | number;
  to: string;
}>;


export type AdvanceTestClockToMutation = { advanceTestClock: { now: string, offsetSeconds: number } };

export type WaitForIdleQueryVariables = Exact<{
  partnerId?: string | number | null | undefined;
  timeoutSeconds: number;
}>;


export type WaitForIdleQuery = { waitForIdle: { waitedMs: number } };

export type AvailableOffersQueryVariables = Exact<{ [key: string]: never; }>;


export type AvailableOffersQuery = { offers: Array<{ purchasable: boolean, reasons: Array<{ code: string, message: string }>, offer: { id: string, name: string, kind: OfferKind, termsVersion: string, price: { amountMinor: number, currency: string, formatted: string } }, quote: { total: { amountMinor: number, formatted: string } } | null }> };

export type AddCardMutationVariables = Exact<{
  card: CardInput;
}>;


export type AddCardMutation = { addPaymentMethod: { id: string, brand: string, last4: string } };

export type PurchaseOfferMutationVariables = Exact<{
  input: PurchaseInput;
}>;


export type PurchaseOfferMutation = { purchaseOffer: { id: string, number: string, status: OrderStatus, failureCode: string | null, failureMessage: string | null, total: { amountMinor: number, formatted: string }, subscription: { id: string, status: SubscriptionStatus, autoRenew: boolean, anniversaryDate: string | null } | null, invoice: { id: string, number: string } | null } };


export const BenefitsDocument = {"__meta__":{"hash":"sha256:4e3aefdef2dfaeebfd1ab7b5de9b990ba2a2aeb2640c27d7375e303d58b69395"},"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"query","name":{"kind":"Name","value":"Benefits"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"category"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"BenefitCategory"}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"first"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"Int"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"benefits"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"category"},"value":{"kind":"Variable","name":{"kind":"Name","value":"category"}}},{"kind":"Argument","name":{"kind":"Name","value":"first"},"value":{"kind":"Variable","name":{"kind":"Name","value":"first"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"edges"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"node"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"code"}},{"kind":"Field","name":{"kind":"Name","value":"product"}},{"kind":"Field","name":{"kind":"Name","value":"category"}},{"kind":"Field","name":{"kind":"Name","value":"quantity"}},{"kind":"Field","name":{"kind":"Name","value":"used"}},{"kind":"Field","name":{"kind":"Name","value":"remaining"}},{"kind":"Field","name":{"kind":"Name","value":"status"}},{"kind":"Field","name":{"kind":"Name","value":"expiresAt"}},{"kind":"Field","name":{"kind":"Name","value":"activation"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"state"}},{"kind":"Field","name":{"kind":"Name","value":"expectedCompletionAt"}},{"kind":"Field","name":{"kind":"Name","value":"failureReason"}}]}},{"kind":"Field","name":{"kind":"Name","value":"accessId"}},{"kind":"Field","name":{"kind":"Name","value":"contractId"}}]}}]}}]}}]}}]} as unknown as DocumentNode<BenefitsQuery, BenefitsQueryVariables>;
export const ActivateTechnicalBenefitDocument = {"__meta__":{"hash":"sha256:d0e46b1c39ab6dd8e1027812ab9e6bf94a341d1389fa26f7f6a55c4d1a87683b"},"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"ActivateTechnicalBenefit"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"benefitId"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"ID"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"activateTechnicalBenefit"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"benefitId"},"value":{"kind":"Variable","name":{"kind":"Name","value":"benefitId"}}},{"kind":"Argument","name":{"kind":"Name","value":"acknowledgeRefundLoss"},"value":{"kind":"BooleanValue","value":true}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"activation"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"state"}},{"kind":"Field","name":{"kind":"Name","value":"expectedCompletionAt"}}]}}]}}]}}]} as unknown as DocumentNode<ActivateTechnicalBenefitMutation, ActivateTechnicalBenefitMutationVariables>;
export const PartnerAgreementDocument = {"__meta__":{"hash":"sha256:394a7f88062069406370090e72a0bf9b9c7f02eaa3f9bc81ab862c3aa8d9eaea"},"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"query","name":{"kind":"Name","value":"PartnerAgreement"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"partnerAgreement"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"name"}},{"kind":"Field","name":{"kind":"Name","value":"version"}}]}}]}}]} as unknown as DocumentNode<PartnerAgreementQuery, PartnerAgreementQueryVariables>;
export const MeDocument = {"__meta__":{"hash":"sha256:f5158ec94c995f0eaaf3065d3ba31f3fd8462c03581114a6683e58672d026616"},"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"query","name":{"kind":"Name","value":"Me"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"me"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"identity"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"subject"}},{"kind":"Field","name":{"kind":"Name","value":"email"}}]}},{"kind":"Field","name":{"kind":"Name","value":"user"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"roles"}},{"kind":"Field","name":{"kind":"Name","value":"status"}}]}},{"kind":"Field","name":{"kind":"Name","value":"partner"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"legalName"}}]}},{"kind":"Field","name":{"kind":"Name","value":"operator"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"name"}}]}}]}}]}}]} as unknown as DocumentNode<MeQuery, MeQueryVariables>;
export const EnrollPartnerDocument = {"__meta__":{"hash":"sha256:ee5ba24989bd38fbb8e38f66549bf8e13f020f3d2e0c8e510fb1900bc4e797f4"},"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"EnrollPartner"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"input"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"EnrollPartnerInput"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"enrollPartner"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"input"},"value":{"kind":"Variable","name":{"kind":"Name","value":"input"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"partner"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"mpnId"}},{"kind":"Field","name":{"kind":"Name","value":"legalName"}},{"kind":"Field","name":{"kind":"Name","value":"vetting"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"status"}},{"kind":"Field","name":{"kind":"Name","value":"subStatus"}}]}}]}},{"kind":"Field","name":{"kind":"Name","value":"user"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"roles"}}]}}]}}]}}]} as unknown as DocumentNode<EnrollPartnerMutation, EnrollPartnerMutationVariables>;
export const VerifyPrimaryContactEmailDocument = {"__meta__":{"hash":"sha256:06c078fbef4e18fd7505757913e8ecd62fcccc0f67d65cd624fe25d0e2f13d9f"},"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"VerifyPrimaryContactEmail"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"token"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"String"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"verifyPrimaryContactEmail"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"token"},"value":{"kind":"Variable","name":{"kind":"Name","value":"token"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"vettingStatus"}},{"kind":"Field","name":{"kind":"Name","value":"vettingSubStatus"}}]}}]}}]} as unknown as DocumentNode<VerifyPrimaryContactEmailMutation, VerifyPrimaryContactEmailMutationVariables>;
export const DecideVettingDocument = {"__meta__":{"hash":"sha256:1ef715f712534b3e9029ea4825e40eb7c023358d74f8d77539fc8de69ea9740c"},"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"DecideVetting"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"partnerId"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"ID"}}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"decision"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"VettingDecision"}}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"reason"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"String"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"decideVetting"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"partnerId"},"value":{"kind":"Variable","name":{"kind":"Name","value":"partnerId"}}},{"kind":"Argument","name":{"kind":"Name","value":"decision"},"value":{"kind":"Variable","name":{"kind":"Name","value":"decision"}}},{"kind":"Argument","name":{"kind":"Name","value":"reason"},"value":{"kind":"Variable","name":{"kind":"Name","value":"reason"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"vetting"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"status"}},{"kind":"Field","name":{"kind":"Name","value":"subStatus"}}]}}]}}]}}]} as unknown as DocumentNode<DecideVettingMutation, DecideVettingMutationVariables>;
export const AdvanceTestClockToDocument = {"__meta__":{"hash":"sha256:2e291fe0b06c11d6c4677965cb6d7db44adc8c3672fca05eb9210c6c7d7c97f2"},"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"AdvanceTestClockTo"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"partnerId"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"ID"}}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"to"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"DateTime"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"advanceTestClock"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"partnerId"},"value":{"kind":"Variable","name":{"kind":"Name","value":"partnerId"}}},{"kind":"Argument","name":{"kind":"Name","value":"to"},"value":{"kind":"Variable","name":{"kind":"Name","value":"to"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"now"}},{"kind":"Field","name":{"kind":"Name","value":"offsetSeconds"}}]}}]}}]} as unknown as DocumentNode<AdvanceTestClockToMutation, AdvanceTestClockToMutationVariables>;
export const WaitForIdleDocument = {"__meta__":{"hash":"sha256:905b66d5fdb154316c76c23bbf816cec6bd2009d9eb66ae36be9a7ae31dd38c1"},"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"query","name":{"kind":"Name","value":"WaitForIdle"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"partnerId"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"ID"}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"timeoutSeconds"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"Int"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"waitForIdle"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"partnerId"},"value":{"kind":"Variable","name":{"kind":"Name","value":"partnerId"}}},{"kind":"Argument","name":{"kind":"Name","value":"timeoutSeconds"},"value":{"kind":"Variable","name":{"kind":"Name","value":"timeoutSeconds"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"waitedMs"}}]}}]}}]} as unknown as DocumentNode<WaitForIdleQuery, WaitForIdleQueryVariables>;
export const AvailableOffersDocument = {"__meta__":{"hash":"sha256:ab680d13e8a17c2878d471633d0c62910b3f90e6837719864d2231ca58a9b14c"},"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"query","name":{"kind":"Name","value":"AvailableOffers"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"offers"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"section"},"value":{"kind":"EnumValue","value":"AVAILABLE"}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"purchasable"}},{"kind":"Field","name":{"kind":"Name","value":"reasons"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"code"}},{"kind":"Field","name":{"kind":"Name","value":"message"}}]}},{"kind":"Field","name":{"kind":"Name","value":"offer"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"name"}},{"kind":"Field","name":{"kind":"Name","value":"kind"}},{"kind":"Field","name":{"kind":"Name","value":"termsVersion"}},{"kind":"Field","name":{"kind":"Name","value":"price"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"amountMinor"}},{"kind":"Field","name":{"kind":"Name","value":"currency"}},{"kind":"Field","name":{"kind":"Name","value":"formatted"}}]}}]}},{"kind":"Field","name":{"kind":"Name","value":"quote"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"total"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"amountMinor"}},{"kind":"Field","name":{"kind":"Name","value":"formatted"}}]}}]}}]}}]}}]} as unknown as DocumentNode<AvailableOffersQuery, AvailableOffersQueryVariables>;
export const AddCardDocument = {"__meta__":{"hash":"sha256:f2ba88d7f9281b5b63b56234a0426205f60edeb404b177065ce81685291327c0"},"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"AddCard"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"card"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"CardInput"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"addPaymentMethod"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"card"},"value":{"kind":"Variable","name":{"kind":"Name","value":"card"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"brand"}},{"kind":"Field","name":{"kind":"Name","value":"last4"}}]}}]}}]} as unknown as DocumentNode<AddCardMutation, AddCardMutationVariables>;
export const PurchaseOfferDocument = {"__meta__":{"hash":"sha256:23d5817ab76708402e82950fd8f14014b2d51e4cf4fa2d970eec20faa3c9063d"},"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"PurchaseOffer"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"input"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"PurchaseInput"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"purchaseOffer"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"input"},"value":{"kind":"Variable","name":{"kind":"Name","value":"input"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"number"}},{"kind":"Field","name":{"kind":"Name","value":"status"}},{"kind":"Field","name":{"kind":"Name","value":"failureCode"}},{"kind":"Field","name":{"kind":"Name","value":"failureMessage"}},{"kind":"Field","name":{"kind":"Name","value":"total"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"amountMinor"}},{"kind":"Field","name":{"kind":"Name","value":"formatted"}}]}},{"kind":"Field","name":{"kind":"Name","value":"subscription"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"status"}},{"kind":"Field","name":{"kind":"Name","value":"autoRenew"}},{"kind":"Field","name":{"kind":"Name","value":"anniversaryDate"}}]}},{"kind":"Field","name":{"kind":"Name","value":"invoice"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"number"}}]}}]}}]}}]} as unknown as DocumentNode<PurchaseOfferMutation, PurchaseOfferMutationVariables>;