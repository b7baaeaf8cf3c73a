package cn.hisbridge.pos;

/**
 * What the POS app plugs in: the acquirer's payment app or SDK (WeChat Pay micropay, Alipay
 * trade.pay, or the acquirer's aggregated API). The SDK calls it on a worker thread, one
 * transaction at a time, only after the transaction is in the {@link TransactionStore}; it
 * never calls {@link #collect} or {@link #refund} twice for one reference, including across
 * app restarts. Use the reference as the wallet's out_trade_no / out_request_no: then
 * {@link #query} can always find what happened.
 */
public interface PaymentBackend {
    /** How a transaction ended, as the wallet says. */
    final class Outcome {
        public final Transaction.Status status;
        /** WECHAT, ALIPAY or OTHER (a collection). */
        public final String channel;
        /** transaction_id / trade_no, or the refund id. */
        public final String payNo;
        /** The wallet's code and message for a failure (e.g. NOTENOUGH / 余额不足). */
        public final String code;
        public final String msg;

        public Outcome(Transaction.Status status, String channel, String payNo, String code, String msg) {
            this.status = status;
            this.channel = channel;
            this.payNo = payNo;
            this.code = code;
            this.msg = msg;
        }

        public static Outcome paid(String channel, String payNo) {
            return new Outcome(Transaction.Status.PAID, channel, payNo, null, null);
        }

        public static Outcome refunded(String refundNo) {
            return new Outcome(Transaction.Status.REFUNDED, null, refundNo, null, null);
        }

        public static Outcome failed(String code, String msg) {
            return new Outcome(Transaction.Status.FAILED, null, null, code, msg);
        }

        public static Outcome cancelled(String code, String msg) {
            return new Outcome(Transaction.Status.CANCELLED, null, null, code, msg);
        }

        /** The wallet does not know the reference (never reached it). */
        public static Outcome notFound() {
            return new Outcome(null, null, null, null, null);
        }

        public static Outcome inProgress() {
            return new Outcome(Transaction.Status.IN_PROGRESS, null, null, null, null);
        }

        @Override
        public String toString() {
            return status + (payNo != null ? " " + payNo : "") + (code != null ? " " + code : "");
        }
    }

    /**
     * Progress the backend reports while it collects (sent as EVENT, §4.4). The SDK sends
     * {@code WAIT_SCAN} itself when the collection starts.
     */
    interface Progress {
        /**
         * The wallet asks the patient to confirm or enter a password (WeChat USERPAYING, Alipay
         * 10003): call it, or the bridge cancels after its scan deadline (pos-protocol.md §5.6).
         */
        void userPaying();

        /** Whether the bridge cancelled: stop waiting for the code and return CANCELLED. */
        boolean cancelled();
    }

    /**
     * Shows the amount, scans the patient's payment code and runs the payment; returns PAID,
     * FAILED, or CANCELLED when {@link Progress#cancelled()} became true before any money
     * moved. May take minutes (the patient); must not throw for a declined payment.
     */
    Outcome collect(String ref, long amountFen, String description, Progress progress) throws Exception;

    /** Refunds part or all of a collection; returns REFUNDED or FAILED. */
    Outcome refund(String ref, Transaction original, long amountFen) throws Exception;

    /**
     * Cancels a collection at the wallet (its reverse / cancel API): returns REVERSED when money
     * had moved and went back, CANCELLED when none had moved, FAILED when the wallet refuses
     * (for instance after a refund).
     */
    Outcome reverse(Transaction sale) throws Exception;

    /**
     * What the wallet knows of a reference, for a transaction the app was running when it
     * stopped: a final status, IN_PROGRESS, or {@link Outcome#notFound()}.
     */
    Outcome query(Transaction t) throws Exception;
}
