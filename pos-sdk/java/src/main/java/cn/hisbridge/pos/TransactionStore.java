package cn.hisbridge.pos;

import java.io.IOException;
import java.util.List;

/**
 * Where the POS keeps its transactions (§4.1): at least for the day, across app restarts and
 * reboots. {@link #put} must be durable when it returns (on disk, not in a cache): the SDK
 * writes a transaction before it asks the payment backend to act on it and before it reports
 * an outcome. {@link FileTransactionStore} is the default.
 */
public interface TransactionStore {
    /** The transaction with this reference, or null. */
    Transaction get(String ref) throws IOException;

    /** Stores (inserts or replaces) a transaction, durably. */
    void put(Transaction t) throws IOException;

    /** Every transaction kept (for the day's totals and refunds' remaining amounts). */
    List<Transaction> all() throws IOException;
}
