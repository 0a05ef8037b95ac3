// Package purchases defines a purchase line of the Marketplace API, how one
// JSON element becomes a validated Record or a rejection with a reason code,
// and the order-independent checksum of a day's content.
package purchases

import (
	"strconv"
	"time"
)

// Reason is the code of a validation failure, stored with every rejected line
// and counted per day.
type Reason string

// Reason codes. They are stored in marketplace.rejected_purchases.reason and
// used as a metric label, so they never change.
const (
	TooLong            Reason = "too_long"             // the element is longer than ETL_MAX_LINE_BYTES; only its start is kept
	InvalidJSON        Reason = "invalid_json"         // the element is not valid JSON (RFC 8259)
	NotObject          Reason = "not_object"           // the array element is not a JSON object
	AllNull            Reason = "all_null"             // every field of the object is null or absent
	MissingField       Reason = "missing_field"        // a field is absent
	NullField          Reason = "null_field"           // a field is null
	WrongType          Reason = "wrong_type"           // e.g. a fractional id, a string price, a date not exactly YYYY-MM-DD
	InvalidGender      Reason = "invalid_gender"       // gender is not M or F
	DateMismatch       Reason = "date_mismatch"        // the line's date is not the requested date
	TimeOutOfRange     Reason = "time_out_of_range"    // seconds from midnight outside 0..86399
	NegativeValue      Reason = "negative_value"       // a negative id, quantity or amount
	DiscountAbovePrice Reason = "discount_above_price" // discount_per_item > price_per_item
	TotalMismatch      Reason = "total_mismatch"       // total != quantity * (price - discount)
	ZeroQuantity       Reason = "zero_quantity"        // quantity is 0
)

// Reasons lists every reason code, in the order validation checks them.
var Reasons = []Reason{TooLong, InvalidJSON, NotObject, AllNull, MissingField, NullField, WrongType, InvalidGender,
	DateMismatch, TimeOutOfRange, NegativeValue, DiscountAbovePrice, TotalMismatch, ZeroQuantity}

// SecondsPerDay bounds purchase_time_as_seconds_from_midnight.
const SecondsPerDay = 86400

// Cents is an amount of money in hundredths, exact.
type Cents int64

// String formats c as a decimal with two places, as PostgreSQL numeric input.
func (c Cents) String() string { return string(c.Append(nil)) }

// Append appends c formatted as by String.
func (c Cents) Append(b []byte) []byte {
	if c < 0 {
		b = append(b, '-')
		c = -c
	}
	b = strconv.AppendInt(b, int64(c/100), 10)
	frac := c % 100
	return append(b, '.', byte('0'+frac/10), byte('0'+frac%10))
}

// Record is one valid purchase line.
type Record struct {
	ClientID  int64
	Gender    byte // 'M' or 'F'
	Date      string
	Seconds   int64
	ProductID int64
	Quantity  int64
	Price     Cents
	Discount  Cents
	Total     Cents
}

// PurchasedAt is the instant of the purchase in the business time zone.
func (r *Record) PurchasedAt(day time.Time) time.Time {
	return day.Add(time.Duration(r.Seconds) * time.Second)
}

// Rejection says why a line was refused.
type Rejection struct {
	Reason Reason
	Detail string
}

func (r *Rejection) Error() string { return string(r.Reason) + ": " + r.Detail }
