// Types every document in src/operations.graphql from the repository's schema.graphql.
// A document the schema no longer satisfies is an error here, so `npm run typecheck` fails.
import type { CodegenConfig } from "@graphql-codegen/cli";

const config: CodegenConfig = {
  schema: "../../schema.graphql",
  documents: ["src/operations.graphql"],
  errorsOnly: false,
  generates: {
    "src/generated/graphql.ts": {
      plugins: ["typescript-operations", "typed-document-node"],
      config: {
        documentMode: "string",
        enumsAsTypes: true,
        onlyOperationTypes: true,
        useTypeImports: true,
        strictScalars: true,
        scalars: { Decimal: "string", DateTime: "string", JSON: "unknown" },
        avoidOptionals: { field: true, inputValue: false, object: true },
      },
    },
  },
};

export default config;
