// npm run plan-schema: prints the JSON Schema of the plan format, derived from the zod schema
// (src/plan/schema.ts), for editors and other tools. Never edited by hand.
import { planJsonSchema } from '../src/plan/schema.ts';
import { runCli } from '../src/cli/common.ts';

runCli(async () => {
  console.log(JSON.stringify(planJsonSchema(), null, 2));
});
