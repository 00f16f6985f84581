// GraphQL Code Generator: TypeScript types and typed documents for the documents in
// `documents/`, from the api's `schema.graphql`. `persisted-documents.json` ({sha256: document})
// is the api's trusted-documents manifest (GRAPHQL_TRUSTED_DOCUMENTS).
import type { CodegenConfig } from "@graphql-codegen/cli";

const config: CodegenConfig = {
  schema: "../../schema.graphql",
  documents: ["documents/**/*.graphql"],
  ignoreNoDocuments: false,
  // `./graphql.js` in the generated imports, as Node's ES modules need.
  emitLegacyCommonJSImports: false,
  generates: {
    "src/gql/": {
      preset: "client",
      config: {
        scalars: {
          DateTime: "string",
          NaiveDate: "string",
          JSON: "unknown",
        },
        enumsAsTypes: true,
        useTypeImports: true,
      },
      presetConfig: {
        fragmentMasking: false,
        persistedDocuments: {
          mode: "embedHashInDocument",
          hashAlgorithm: "sha256",
        },
      },
    },
  },
};

export default config;
