/**
 * The D1 database as drizzle sees it, typed by the schema, and the timestamps
 * the tables store (ISO 8601, UTC).
 */
import { drizzle, type DrizzleD1Database } from "drizzle-orm/d1";
import * as schema from "./schema";

export type Db = DrizzleD1Database<typeof schema> & { readonly $client: D1Database };
export const database = (d1: D1Database): Db => drizzle(d1, { schema });

export const now = (): string => new Date().toISOString();
