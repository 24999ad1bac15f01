//! IVR menus answered as TwiML: walking the levels, invalid keys, silence.

use sqlx::PgPool;

use super::world::*;
use crate::support::{TestApp, migrate, spawn_app_with};

struct Menus {
    root: i64,
    claims_menu: i64,
    claims: i64,
    sales: i64,
}

/// Root: 1 -> a sub-menu where 2 -> claims; 3 -> sales. One retry, then sales.
async fn menus(pool: &PgPool, fallback: bool) -> Menus {
    let claims = department(pool, "claims", "round_robin", None, 60).await;
    let sales = department(pool, "sales", "round_robin", None, 60).await;
    let menu = |prompt: &'static str, number: Option<&'static str>| {
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO ivr_menus (phone_number, prompt, max_retries, fallback_department_id) VALUES ($1, $2, 1, $3) RETURNING id",
        )
        .bind(number)
        .bind(prompt)
        .bind(fallback.then_some(sales))
        .fetch_one(pool)
    };
    let root = menu("Press 1 for insurance, 3 for sales.", Some(OUR_NUMBER)).await.unwrap();
    let claims_menu = menu("Press 2 for claims.", None).await.unwrap();
    for (menu, digit, department, submenu) in
        [(root, "1", None, Some(claims_menu)), (root, "3", Some(sales), None), (claims_menu, "2", Some(claims), None)]
    {
        sqlx::query("INSERT INTO ivr_options (menu_id, digit, department_id, submenu_id) VALUES ($1, $2, $3, $4)")
            .bind(menu)
            .bind(digit)
            .bind(department)
            .bind(submenu)
            .execute(pool)
            .await
            .unwrap();
    }
    Menus { root, claims_menu, claims, sales }
}

async fn press(app: &TestApp, sid: &str, menu: i64, attempt: i32, digits: &str) -> String {
    let path = format!("/webhooks/twilio/ivr?menu={menu}&attempt={attempt}");
    let params = [("CallSid", sid), ("From", CALLER), ("To", OUR_NUMBER), ("Digits", digits)];
    let response = twilio_post(app, &path, &params).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

fn offers(twiml: &str, menu: i64, attempt: i32) -> bool {
    twiml.contains(&format!("/webhooks/twilio/ivr?menu={menu}&amp;attempt={attempt}"))
}

async fn department_of(pool: &PgPool, sid: &str) -> Option<i64> {
    sqlx::query_scalar("SELECT department_id FROM calls WHERE call_sid = $1").bind(sid).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrations = false)]
async fn an_ivr_walk_pressing_1_then_2_reaches_the_claims_department(pool: PgPool) {
    migrate(&pool).await;
    let menus = menus(&pool, true).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let sid = call_sid(21);

    let greeting = twilio_post(&app, "/webhooks/twilio/voice", &borrowed(&incoming_call(&sid)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(offers(&greeting, menus.root, 0) && greeting.contains("Press 1 for insurance"), "{greeting}");
    let sub_menu = press(&app, &sid, menus.root, 0, "1").await;
    assert!(offers(&sub_menu, menus.claims_menu, 0) && sub_menu.contains("Press 2 for claims"), "{sub_menu}");
    let queued = press(&app, &sid, menus.claims_menu, 0, "2").await;

    assert!(queued.contains(&format!("<Enqueue>{sid}</Enqueue>")), "{queued}");
    assert_eq!(department_of(&pool, &sid).await, Some(menus.claims));
    assert_eq!(route_jobs(&pool).await, 1);
}

#[sqlx::test(migrations = false)]
async fn an_invalid_digit_repeats_the_menu(pool: PgPool) {
    migrate(&pool).await;
    let menus = menus(&pool, true).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let sid = call_sid(22);
    twilio_post(&app, "/webhooks/twilio/voice", &borrowed(&incoming_call(&sid))).send().await.unwrap();

    let repeated = press(&app, &sid, menus.root, 0, "9").await;

    assert!(repeated.contains("not a valid choice"), "{repeated}");
    assert!(offers(&repeated, menus.root, 1) && repeated.contains("Press 1 for insurance"), "{repeated}");
    assert_eq!(route_jobs(&pool).await, 0);
}

#[sqlx::test(migrations = false)]
async fn silence_offers_the_menu_again_then_falls_back_to_the_fallback_department(pool: PgPool) {
    migrate(&pool).await;
    let menus = menus(&pool, true).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let sid = call_sid(23);
    twilio_post(&app, "/webhooks/twilio/voice", &borrowed(&incoming_call(&sid))).send().await.unwrap();

    let again = press(&app, &sid, menus.root, 0, "").await;
    assert!(offers(&again, menus.root, 1), "{again}");
    let fell_back = press(&app, &sid, menus.root, 1, "").await;

    assert!(fell_back.contains(&format!("<Enqueue>{sid}</Enqueue>")), "{fell_back}");
    assert_eq!(department_of(&pool, &sid).await, Some(menus.sales));
    assert_eq!(route_jobs(&pool).await, 1);
}

#[sqlx::test(migrations = false)]
async fn silence_with_no_fallback_department_takes_a_voicemail(pool: PgPool) {
    migrate(&pool).await;
    let menus = menus(&pool, false).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let sid = call_sid(24);
    twilio_post(&app, "/webhooks/twilio/voice", &borrowed(&incoming_call(&sid))).send().await.unwrap();

    press(&app, &sid, menus.root, 0, "").await;
    let voicemail = press(&app, &sid, menus.root, 1, "").await;

    assert!(voicemail.contains("<Record") && voicemail.contains("/webhooks/twilio/recording"), "{voicemail}");
    assert_eq!(route_jobs(&pool).await, 0);
}

#[sqlx::test(migrations = false)]
async fn exotel_passthru_digits_choose_the_department_or_take_branch_b(pool: PgPool) {
    migrate(&pool).await;
    let menus = menus(&pool, true).await;
    sqlx::query("UPDATE ivr_menus SET phone_number = '+918041234567' WHERE id = $1")
        .bind(menus.root)
        .execute(&pool)
        .await
        .unwrap();
    let app = spawn_app_with(&pool, webhooks()).await;
    let passthru = |sid: &str, digits: &str| {
        app.client
            .get(format!(
                "{}/webhooks/exotel/{EXOTEL_SECRET}/voice?CallSid={sid}&CallFrom=09876543210&CallTo=08041234567&digits=%22{digits}%22",
                app.base_url
            ))
            .send()
    };

    let chosen = passthru("exo31", "3").await.unwrap();
    let invalid = passthru("exo32", "9").await.unwrap();

    assert_eq!(chosen.status(), 200);
    assert_eq!(invalid.status(), 302);
    assert_eq!(department_of(&pool, "exo31").await, Some(menus.sales));
    assert_eq!(department_of(&pool, "exo32").await, None);
}
