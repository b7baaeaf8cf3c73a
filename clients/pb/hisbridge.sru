$PBExportHeader$n_hisbridge.sru
$PBExportComments$HIS Bridge for a 32-bit PowerBuilder HIS (docs/his-interface.md section 9). Not run here: no PowerBuilder on the build machines; scripts/check-declarations.py checks its names against the DLL's exports.
forward
global type n_hisbridge from nonvisualobject
end type
end forward

global type n_hisbridge from nonvisualobject
end type
global n_hisbridge n_hisbridge

type prototypes
// hisbridge_client.dll (the 32-bit one, sdk\x86) beside the HIS's exe; ";Ansi" passes GBK.
FUNCTION long hisbridge_initA(string key_file, long port) LIBRARY "hisbridge_client.dll" ALIAS FOR "hisbridge_initA;Ansi"
FUNCTION long hisbridge_payA(string terminal_id, string order_no, string refund_no, string amount, string description, string operator, ref string response, long response_size, long timeout_ms) LIBRARY "hisbridge_client.dll" ALIAS FOR "hisbridge_payA;Ansi"
FUNCTION long hisbridge_queryA(string terminal_id, string order_no, string refund_no, ref string response, long response_size, long timeout_ms) LIBRARY "hisbridge_client.dll" ALIAS FOR "hisbridge_queryA;Ansi"
FUNCTION long hisbridge_cancelA(string terminal_id, string order_no, string refund_no, ref string response, long response_size, long timeout_ms) LIBRARY "hisbridge_client.dll" ALIAS FOR "hisbridge_cancelA;Ansi"
FUNCTION long hisbridge_getA(string response_json, string name, ref string out_text, long out_size) LIBRARY "hisbridge_client.dll" ALIAS FOR "hisbridge_getA;Ansi"
end prototypes

type variables
string is_terminal = "W01"
string is_last_response
end variables

forward prototypes
public function integer of_init (string as_key_file, long al_port)
public function string of_field (string as_name)
public function integer of_pay (string as_order_no, string as_refund_no, string as_amount, string as_description, string as_operator)
public function integer of_cancel (string as_order_no, string as_refund_no)
end prototypes

public function integer of_init (string as_key_file, long al_port);
// 0 when ready; otherwise the DLL's return code (-2: key file, -7: arguments).
return hisbridge_initA(as_key_file, al_port)
end function

public function string of_field (string as_name);
string ls_out
ls_out = Space(512)
hisbridge_getA(is_last_response, as_name, ls_out, 512)
return Trim(ls_out)
end function

public function integer of_pay (string as_order_no, string as_refund_no, string as_amount, string as_description, string as_operator);
// A collection ("+12.50", as_refund_no "") or a refund ("-3.00", as_refund_no "R1").
// Returns 0 with a final result (read of_field("status")), or a negative DLL code.
long ll_rc
string ls_rsp
ls_rsp = Space(4096)
ll_rc = hisbridge_payA(is_terminal, as_order_no, as_refund_no, as_amount, as_description, as_operator, ls_rsp, 4096, 120000)
// 1 = HB_PENDING: the outcome is not known yet. Never charge again: ask until it is final.
DO WHILE ll_rc = 1 OR ll_rc = -6
	ls_rsp = Space(4096)
	ll_rc = hisbridge_queryA(is_terminal, as_order_no, as_refund_no, ls_rsp, 4096, 30000)
LOOP
is_last_response = ls_rsp
return ll_rc
end function

public function integer of_cancel (string as_order_no, string as_refund_no);
long ll_rc
string ls_rsp
ls_rsp = Space(4096)
ll_rc = hisbridge_cancelA(is_terminal, as_order_no, as_refund_no, ls_rsp, 4096, 30000)
is_last_response = ls_rsp
return ll_rc
end function

on n_hisbridge.create
call super::create
end on

on n_hisbridge.destroy
call super::destroy
end on
