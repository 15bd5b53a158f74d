/** MemoryStorage against the shared storage contract. */
import { MemoryStorage } from "../../src/storage/memory.js";
import { storageSuite } from "./suite.js";

storageSuite("MemoryStorage", { create: (config) => MemoryStorage.bootstrap(config) });
