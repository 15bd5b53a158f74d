/**
 * The HTTP API's wire types, generated from src/api/schemas.ts by `npm run gen:api`: do not edit.
 * Owns nothing of its own; must never drift from the schemas (test/api/typegen.test.ts checks).
 */

export type ErrorBody = {
  readonly error: {
    /** stable, machine-readable */
    readonly code: string;
    /** for people */
    readonly message: string;
    readonly [field: string]: unknown;
  };
};

export type KeyValue = {
  readonly key: string;
  /** any JSON value */
  readonly value: unknown;
  /** the revision that last modified the key */
  readonly revision: number;
  /** the revision that created the key */
  readonly createRevision: number;
  /** writes to the key since it was created */
  readonly version: number;
  readonly lease?: number;
};

export type Member = {
  readonly id: string;
  readonly url: string;
  readonly voter: boolean;
  readonly role: "leader" | "follower" | "learner";
  readonly promoting: boolean;
  /** null: not known to this node */
  readonly priority: number | null;
  readonly matchIndex: number | null;
  readonly lagEntries: number | null;
};

export type LeaderRef = {
  readonly id: string;
  readonly url: string | null;
} | null;

export type ClusterStatus = {
  readonly clusterId: string;
  readonly self: string;
  readonly term: number;
  readonly leader: LeaderRef;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly members: readonly Member[];
  /** a partitioned cluster's rule: hash, or prefix:D (the key up to its first D) */
  readonly partitionBy?: string;
  /** a partitioned cluster (ballot start --partitions N): who leads each partition, as this node sees it. The top-level term, leader and indexes are partition 0's */
  readonly partitions?: readonly {
    readonly id: number;
    readonly leader: LeaderRef;
    readonly term: number;
    readonly commitIndex: number;
    /** the partition is idle and quiet on this node: no heartbeats, no election timer, woken by any write, read or failure */
    readonly quiet?: boolean;
  }[];
};

export type Readiness = {
  readonly ready: boolean;
  readonly leader: string | null;
  readonly appliedIndex: number;
  readonly commitIndex: number;
  /** a partitioned cluster: the partitions without a leader, or not applied here yet */
  readonly partitionsNotReady?: readonly number[];
};

export type ElectionLeader = {
  /** what the leader proclaimed (any JSON value) */
  readonly value: unknown;
  readonly lease: number;
  /** the leader's creation revision: grows with each leadership */
  readonly fencingToken: number;
} | null;

export type TxnCompare = {
  readonly key: string;
  /** revision is the key's last modification revision; a missing key has 0 for all three */
  readonly target: "value" | "revision" | "version" | "createRevision";
  readonly op: "==" | "!=" | "<" | ">";
  /** for target value: any JSON value (== and != compare JSON text; < and > numbers with numbers, strings with strings); else a non-negative integer */
  readonly value: unknown;
};

export type TxnOp =
  | {
      readonly put: {
        readonly key: string;
        /** any JSON value */
        readonly value: unknown;
        readonly lease?: number;
      };
    }
  | {
      readonly delete: {
        readonly key: string;
      };
    }
  | {
      readonly get: {
        readonly key: string;
      };
    };

export type TxnOpResult =
  | {
      readonly put: KeyValue;
    }
  | {
      readonly delete: {
        readonly key: string;
        readonly deleted: boolean;
      };
    }
  | {
      readonly get: {
        readonly key: string;
        /** the key as the transaction saw it at that point; null if absent */
        readonly kv: KeyValue | null;
      };
    };

/** GET /v1/kv/{key}: the answer. */
export type GetKeyResponse = KeyValue;

/** PUT /v1/kv/{key}: the request body. */
export type PutKeyBody = {
  /** any JSON value (at most 1 MiB as JSON text) */
  readonly value: unknown;
  readonly lease?: number;
};

/** PUT /v1/kv/{key}: the answer. */
export type PutKeyResponse = {
  readonly key: string;
  /** any JSON value */
  readonly value: unknown;
  /** the revision that last modified the key */
  readonly revision: number;
  /** the revision that created the key */
  readonly createRevision: number;
  /** writes to the key since it was created */
  readonly version: number;
  readonly lease?: number;
};

/** DELETE /v1/kv/{key}: the answer. */
export type DeleteKeyResponse = {
  readonly key: string;
  readonly deleted: boolean;
  /** a revision of the store (0 = none) */
  readonly revision: number;
};

/** GET /v1/kv: the answer. */
export type ListKeysResponse = {
  readonly kvs: readonly KeyValue[];
  readonly more: boolean;
  /** a revision of the store (0 = none) */
  readonly revision: number;
  /** a partitioned cluster's range over several partitions: each partition's revision, by partition id (revision is then partition 0's) */
  readonly revisions?: readonly number[];
};

/** POST /v1/txn: the request body. */
export type TxnBody = {
  readonly compare?: readonly TxnCompare[];
  readonly success?: readonly TxnOp[];
  readonly failure?: readonly TxnOp[];
};

/** POST /v1/txn: the answer. */
export type TxnResponse = {
  readonly succeeded: boolean;
  /** a revision of the store (0 = none) */
  readonly revision: number;
  readonly results: readonly TxnOpResult[];
  /** a replay (same Idempotency-Key) whose gets' values were too large to remember */
  readonly valuesOmitted?: boolean;
};

/** GET /v1/leases: the answer. */
export type ListLeasesResponse = {
  readonly leases: readonly {
    readonly id: number;
    readonly ttl: number;
  }[];
  /** a revision of the store (0 = none) */
  readonly revision: number;
};

/** POST /v1/leases: the request body. */
export type GrantLeaseBody = {
  /** seconds */
  readonly ttl: number;
};

/** POST /v1/leases: the answer. */
export type GrantLeaseResponse = {
  readonly id: number;
  readonly ttl: number;
};

/** GET /v1/leases/{id}: the answer. */
export type GetLeaseResponse = {
  readonly id: number;
  readonly ttl: number;
  readonly keys: readonly string[];
  readonly elections: readonly string[];
  readonly remainingMs?: number;
};

/** DELETE /v1/leases/{id}: the answer. */
export type RevokeLeaseResponse = {
  readonly id: number;
  readonly revoked: boolean;
  /** a revision of the store (0 = none) */
  readonly revision: number;
};

/** POST /v1/leases/{id}/keepalive: the request body. */
export type KeepAliveLeaseBody = Record<string, never>;

/** POST /v1/leases/{id}/keepalive: the answer. */
export type KeepAliveLeaseResponse = {
  readonly id: number;
  readonly ttl: number;
};

/** GET /v1/elections/{name}: the answer. */
export type GetElectionResponse = {
  readonly name: string;
  readonly leader: ElectionLeader;
  readonly candidates: number;
  /** a revision of the store (0 = none) */
  readonly revision: number;
};

/** POST /v1/elections/{name}/campaign: the request body. */
export type CampaignBody = {
  /** what to proclaim as leader (any JSON value) */
  readonly value?: unknown;
  /** a synonym of "value" (DESIGN.md) */
  readonly candidate?: unknown;
  /** a lease you keep alive; give this or ttl */
  readonly lease?: number;
  /** seconds: the server grants a lease for the candidacy */
  readonly ttl?: number;
};

/** POST /v1/elections/{name}/campaign: the answer. */
export type CampaignResponse = {
  readonly name: string;
  readonly value: unknown;
  readonly lease: number;
  readonly fencingToken: number;
  /** a revision of the store (0 = none) */
  readonly revision: number;
  /** ttl campaigns: how long the leadership is surely valid */
  readonly validForMs?: number;
};

/** POST /v1/elections/{name}/proclaim: the request body. */
export type ProclaimBody = {
  /** any JSON value */
  readonly value: unknown;
  readonly lease: number;
};

/** POST /v1/elections/{name}/proclaim: the answer. */
export type ProclaimResponse = {
  readonly name: string;
  readonly value: unknown;
  readonly lease: number;
  readonly fencingToken: number;
  /** a revision of the store (0 = none) */
  readonly revision: number;
};

/** POST /v1/elections/{name}/resign: the request body. */
export type ResignBody = {
  readonly lease: number;
};

/** POST /v1/elections/{name}/resign: the answer. */
export type ResignResponse = {
  readonly name: string;
  readonly resigned: boolean;
  /** a revision of the store (0 = none) */
  readonly revision: number;
};

/** GET /v1/cluster: the answer. */
export type GetClusterResponse = ClusterStatus;

/** GET /v1/cluster/members: the answer. */
export type ListMembersResponse = {
  readonly members: readonly Member[];
};

/** POST /v1/cluster/members: the request body. */
export type AddMemberBody = {
  readonly id: string;
  readonly url: string;
  readonly learner?: boolean;
};

/** POST /v1/cluster/members: the answer. */
export type AddMemberResponse = {
  readonly added: string;
  readonly learner: boolean;
  readonly promote: boolean;
  readonly members: readonly Member[];
};

/** GET /v1/cluster/members/{id}: the answer. */
export type GetMemberResponse = {
  readonly member: Member;
};

/** DELETE /v1/cluster/members/{id}: the answer. */
export type RemoveMemberResponse = {
  readonly removed: string;
  readonly members: readonly Member[];
};

/** POST /v1/cluster/members/{id}/promote: the request body. */
export type PromoteMemberBody = Record<string, never>;

/** POST /v1/cluster/members/{id}/promote: the answer. */
export type PromoteMemberResponse = {
  readonly promoted: string;
  readonly members: readonly Member[];
};

/** POST /v1/cluster/transfer-leader: the request body. */
export type TransferLeaderBody = {
  readonly id: string;
};

/** POST /v1/cluster/transfer-leader: the answer. */
export type TransferLeaderResponse = {
  readonly leader: string;
  readonly term: number;
  readonly moved: boolean;
};

/** GET /health: the answer. */
export type HealthResponse = {
  readonly status: "ok";
  readonly node: string;
  readonly clusterId: string;
};

/** GET /ready: the answer. */
export type ReadyResponse = Readiness;

/** GET /v1/openapi.json: the answer. */
export type OpenapiResponse = Record<string, never>;
