#!/usr/bin/env node
// Writes src/client/api-types.ts from the API's schemas (run after `npm run build`; `npm run gen:api` does both).
import { writeFileSync } from "node:fs";
import { generateClientTypes } from "../dist/src/api/typegen.js";

writeFileSync(new URL("../src/client/api-types.ts", import.meta.url), generateClientTypes());
console.log("wrote src/client/api-types.ts");
