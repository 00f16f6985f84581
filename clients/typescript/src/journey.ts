// The portal's main journey through the generated client, against a running system:
// enrollment → email verification → vetting → purchase → benefits → technical activation.
//
// Environment: PBG_API_URL (the api), PBG_USER_TOKEN (a signed-in identity with the contact's
// email, not yet in a partner), PBG_OPERATOR_TOKEN (an operator), PBG_CONTACT_EMAIL. The
// system must run outside production with test clocks and captured mail (EMAIL_TRANSPORT=file
// or memory). Prints one JSON line with what it saw; exits non-zero on the first surprise.
import { randomUUID } from "node:crypto";
import { capturedMail, execute } from "./client.js";
import {
  ActivateTechnicalBenefitDocument,
  AddCardDocument,
  AdvanceTestClockToDocument,
  AvailableOffersDocument,
  BenefitsDocument,
  DecideVettingDocument,
  EnrollPartnerDocument,
  MeDocument,
  PartnerAgreementDocument,
  PurchaseOfferDocument,
  VerifyPrimaryContactEmailDocument,
  WaitForIdleDocument,
} from "./gql/graphql.js";

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}

function check(condition: unknown, what: string): asserts condition {
  if (!condition) throw new Error(`journey: ${what}`);
}

const url = env("PBG_API_URL");
const contact = env("PBG_CONTACT_EMAIL");
const user = { url, token: env("PBG_USER_TOKEN") };
const operator = { url, token: env("PBG_OPERATOR_TOKEN") };
const anonymous = { url };

async function waitForIdle(partnerId: string): Promise<void> {
  await execute(operator, WaitForIdleDocument, { partnerId, timeoutSeconds: 10 });
}

// 1. Enrollment, accepting the agreement version the API says is current.
const { partnerAgreement } = await execute(anonymous, PartnerAgreementDocument);
const before = await execute(user, MeDocument);
check(before.me.partner == null, "the identity is not in a partner yet");
const { enrollPartner } = await execute(user, EnrollPartnerDocument, {
  input: {
    legalName: "Typed Client Ltd",
    address: {
      lines: ["1 Microsoft Way"],
      city: "Redmond",
      region: "WA",
      postalCode: "98052",
      country: "US",
    },
    primaryContact: {
      firstName: "Grace",
      lastName: "Hopper",
      email: contact,
      phone: "+14255550100",
    },
    acceptPartnerAgreement: true,
    agreementVersion: partnerAgreement.version,
  },
});
const partnerId = enrollPartner.partner.id;
check(enrollPartner.user.roles.includes("GLOBAL_ADMIN"), "the enrolling user is Global admin");

// 2. The verification email, read over HTTP once the partner is idle; its link goes to the portal.
await waitForIdle(partnerId);
const mail = await capturedMail(url, contact);
check(mail.length === 1 && mail[0].template === "verification", "one verification email");
const link = new URL(mail[0].links[0]);
check(link.pathname === "/verify-email", `a /verify-email link, got ${link}`);
const token = link.searchParams.get("token");
check(token, "the link carries a token");
await execute(user, VerifyPrimaryContactEmailDocument, { token });

// 3. Vetting: an operator authorizes the partner.
const { decideVetting } = await execute(operator, DecideVettingDocument, {
  partnerId,
  decision: "AUTHORIZE",
});
check(decideVetting.vetting.status === "AUTHORIZED", "authorized");

// 4. Purchase: the Action Pack, by card, accepting the offer's terms version.
const { offers } = await execute(user, AvailableOffersDocument);
const actionPack = offers.find((o) => o.offer.id === "ACTION_PACK");
check(actionPack?.purchasable, `the Action Pack can be bought: ${JSON.stringify(actionPack?.reasons)}`);
const { addPaymentMethod } = await execute(user, AddCardDocument, {
  card: {
    number: "4242 4242 4242 4242",
    expMonth: 12,
    expYear: 2035,
    cvc: "123",
    holderName: "Grace Hopper",
  },
});
const { purchaseOffer } = await execute(user, PurchaseOfferDocument, {
  input: {
    offerId: actionPack.offer.id,
    idempotencyKey: randomUUID(),
    acceptTermsVersion: actionPack.offer.termsVersion,
    payment: { paymentMethodId: addPaymentMethod.id },
  },
});
check(purchaseOffer.status === "PAID", `paid, got ${purchaseOffer.status} ${purchaseOffer.failureCode}`);
check(purchaseOffer.subscription?.status === "ACTIVE", "an active subscription");
check(purchaseOffer.invoice?.number, "an invoice");

// 5. Benefits: technical support, activated; the activation takes days of partner time.
const support = async () => {
  const { benefits } = await execute(user, BenefitsDocument, { category: "TECHNICAL", first: 50 });
  const found = benefits.edges.map((e) => e.node).find((b) => b.code === "PRODUCT_SUPPORT");
  check(found, "a PRODUCT_SUPPORT benefit");
  return found;
};
check((await support()).activation?.state === "NOT_ACTIVATED", "support starts not activated");
const { activateTechnicalBenefit } = await execute(user, ActivateTechnicalBenefitDocument, {
  benefitId: (await support()).id,
});
const expected = activateTechnicalBenefit.activation?.expectedCompletionAt;
check(activateTechnicalBenefit.activation?.state === "ACTIVATION_PENDING" && expected, "pending");

// 6. Time passes on the partner's clock; the worker completes the activation.
const to = new Date(Date.parse(expected) + 5 * 60 * 1000).toISOString();
await execute(operator, AdvanceTestClockToDocument, { partnerId, to });
await waitForIdle(partnerId);
const active = await support();
check(active.activation?.state === "ACTIVE", `active, got ${active.activation?.state}`);
check(active.accessId?.startsWith("AID"), "an Access ID");

console.log(
  JSON.stringify({
    partnerId,
    agreementVersion: partnerAgreement.version,
    order: purchaseOffer.number,
    invoice: purchaseOffer.invoice.number,
    total: purchaseOffer.total.formatted,
    support: active.activation.state,
    accessId: active.accessId,
  }),
);
