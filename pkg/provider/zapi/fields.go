package zapi

import (
	"math/bits"

	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/jsonscan"
)

// contentKeys are ReceivedCallback's message content keys in order of
// precedence: when a callback carries several, the first one names the
// message. Specific kinds come before the generic ones they may travel with
// (a status reply carries its text and the statusImage it answers; a
// template or carousel nests media in headers, not at the top level).
var contentKeys = [...]string{
	"reaction",
	"pollVote",
	"poll",
	"eventResponse",
	"event",
	"buttonsResponseMessage",
	"listResponseMessage",
	"buttonsMessage",
	"hydratedTemplate",
	"carouselMessage",
	"pixKeyMessage",
	"pinMessage",
	"newsletterAdminInvite",
	"requestPayment",
	"sendPayment",
	"reviewAndPay",
	"reviewOrder",
	"order",
	"product",
	"image",
	"video",
	"audio",
	"document",
	"sticker",
	"contact",
	"location",
	"text",
	"statusImage",
}

// contentIndex returns key's position in contentKeys, or -1.
func contentIndex(key []byte) int {
	switch string(key) {
	case "reaction":
		return 0
	case "pollVote":
		return 1
	case "poll":
		return 2
	case "eventResponse":
		return 3
	case "event":
		return 4
	case "buttonsResponseMessage":
		return 5
	case "listResponseMessage":
		return 6
	case "buttonsMessage":
		return 7
	case "hydratedTemplate":
		return 8
	case "carouselMessage":
		return 9
	case "pixKeyMessage":
		return 10
	case "pinMessage":
		return 11
	case "newsletterAdminInvite":
		return 12
	case "requestPayment":
		return 13
	case "sendPayment":
		return 14
	case "reviewAndPay":
		return 15
	case "reviewOrder":
		return 16
	case "order":
		return 17
	case "product":
		return 18
	case "image":
		return 19
	case "video":
		return 20
	case "audio":
		return 21
	case "document":
		return 22
	case "sticker":
		return 23
	case "contact":
		return 24
	case "location":
		return 25
	case "text":
		return 26
	case "statusImage":
		return 27
	}
	return -1
}

// fields are the raw values of the top-level members wahook reads; a member
// given twice keeps its last value, as encoding/json does.
type fields struct {
	typ              []byte
	instanceID       []byte
	messageID        []byte
	phone            []byte
	momment          []byte
	notification     []byte
	params           []byte // notificationParameters
	isEdit           []byte
	waiting          []byte // waitingMessage
	status           []byte
	ids              []byte
	id               []byte
	zaapID           []byte
	errorField       []byte
	chatName         []byte
	fromMe           []byte
	isGroup          []byte
	connectedPhone   []byte
	participantPhone []byte
	participantLid   []byte
	chatLid          []byte
	participant      []byte
	callID           []byte
	requestMethod    []byte
	linkMode         []byte
	content          uint32 // bit i: contentKeys[i] holds an object or array
}

// decode reads the members of the JSON object in data.
func decode(data []byte) (fields, error) {
	var f fields
	if !provider.ValidJSON(data) {
		return f, provider.Invalid("not valid JSON")
	}
	if jsonscan.First(data) != '{' {
		return f, provider.Invalid("not a JSON object")
	}
	for key, val := range jsonscan.Members(data) {
		f.set(key, val)
	}
	return f, nil
}

func (f *fields) set(key, val []byte) {
	switch string(key) {
	case "type":
		f.typ = val
	case "instanceId":
		f.instanceID = val
	case "messageId":
		f.messageID = val
	case "phone":
		f.phone = val
	case "momment":
		f.momment = val
	case "notification":
		f.notification = val
	case "notificationParameters":
		f.params = val
	case "isEdit":
		f.isEdit = val
	case "waitingMessage":
		f.waiting = val
	case "status":
		f.status = val
	case "ids":
		f.ids = val
	case "id":
		f.id = val
	case "zaapId":
		f.zaapID = val
	case "error":
		f.errorField = val
	case "chatName":
		f.chatName = val
	case "fromMe":
		f.fromMe = val
	case "isGroup":
		f.isGroup = val
	case "connectedPhone":
		f.connectedPhone = val
	case "participantPhone":
		f.participantPhone = val
	case "participantLid":
		f.participantLid = val
	case "chatLid":
		f.chatLid = val
	case "participant":
		f.participant = val
	case "callId":
		f.callID = val
	case "requestMethod":
		f.requestMethod = val
	case "linkMode":
		f.linkMode = val
	default:
		if i := contentIndex(key); i >= 0 {
			if len(val) > 0 && (val[0] == '{' || val[0] == '[') {
				f.content |= 1 << i
			} else {
				f.content &^= 1 << i
			}
		}
	}
}

// firstContent is the index in contentKeys of the content key that names a
// ReceivedCallback, or -1.
func (f *fields) firstContent() int {
	if f.content == 0 {
		return -1
	}
	return bits.TrailingZeros32(f.content)
}

// notificationName is the notification value, "" when absent, null or not a string.
func (f *fields) notificationName() string {
	if !isString(f.notification) {
		return ""
	}
	return jsonscan.Text(f.notification)
}

// isString reports whether raw is a JSON string.
func isString(raw []byte) bool { return len(raw) > 0 && raw[0] == '"' }

// set reports whether raw carries something: not absent, null, false, "" or empty.
func set(raw []byte) bool {
	switch string(raw) {
	case "", "null", "false", `""`, "{}", "[]":
		return false
	}
	return true
}
